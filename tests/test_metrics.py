"""Metrics on hand-built episodes; expected values are worked out by hand in the comments."""
import pytest

from rise.metrics import (
    TIE_RULE,
    accuracy_after_wrong,
    bootstrap_ci,
    cumulative_oracle_accuracy,
    episode_metrics,
    flip_counts,
    majority_correct,
    majority_vote,
    metrics_by_model,
    pass_at,
    turn_accuracy,
)

GOLD = "5"


def r(answer):
    """A response; correct iff its normalised answer equals the gold "5"."""
    return {"text": f"... {answer}", "answer": answer, "reward": 1.0 if answer == GOLD else 0.0}


def ep(pid, parallel, turns, model="m"):
    return {"model": model, "problem_id": pid, "gold": GOLD,
            "parallel": [r(a) for a in parallel], "turns": [r(a) for a in turns]}


# K = 3 parallel samples, T = 3 turns; turns[0] is parallel[0].
EPISODES = [
    ep("p1", ["5", "4", "4"], ["5", "5", "5"]),     # right, right, right
    ep("p2", ["4", "5", "5"], ["4", "5", "4"]),     # wrong, right, wrong
    ep("p3", [None, None, "3"], [None, "3", None]),  # wrong x3, two without answer
    ep("p4", ["4", "5", "6"], ["4", "6", "5"]),     # wrong, wrong, right
]


@pytest.mark.parametrize("answers, expected", [
    ([], None),
    ([None], None),
    ([None, None, None], None),                # all None: no answer, counts as wrong
    (["a"], 0),                                # single answer
    (["a", "b"], 1),                           # 1-1 tie: most recent wins
    (["b", "a"], 1),
    (["a", "b", "c"], 2),
    (["a", "b", "a"], 2),                      # plain majority, index of its latest occurrence
    (["a", "a", "b"], 1),                      # majority beats a more recent minority
    (["a", "b", "b", "a"], 3),                 # 2-2 tie: "a" occurs last
    (["a", "b", "a", "b"], 3),
    ([None, "a", None], 1),                    # None never wins over a real answer
    (["a", None, None, None], 0),
    ([None, None, "a", "b", None], 3),
])
def test_majority_vote_table(answers, expected):
    assert majority_vote(answers) == expected


def test_majority_vote_uses_keys_and_checks_length():
    assert majority_vote(["1.0", "1", "2"], keys=["1", "1", "2"]) == 1
    assert majority_vote(["x", "y"], keys=[None, "k"]) == 1
    assert majority_vote(["x", "y"], keys=[None, None]) is None
    with pytest.raises(ValueError):
        majority_vote(["a", "b"], keys=["a"])


def test_tie_rule_is_documented():
    assert "most recent" in TIE_RULE and "most recent" in majority_vote.__doc__


def test_episode_metrics_hand_values():
    m = episode_metrics(EPISODES)
    assert (m["n"], m["K"], m["T"]) == (4, 3, 3)
    assert m["m1@t1"] == 0.25        # only p1 right at turn 1
    assert m["m3@t1"] == 0.25        # p1: "4" 2 votes wrong; p2: "5" right; p3: "3" wrong; p4: 1-1-1 tie -> "6" wrong
    assert m["p3@t1"] == 0.75        # p1, p2, p4 have a right sample
    assert m["m1@t3"] == 0.5         # p1 "5" right; p2 "4" x2 wrong; p3 "3" wrong; p4 tie -> latest "5" right
    assert m["p1@t3"] == 0.75        # p1, p2, p4 right at some turn
    assert m["turn_acc"] == [0.25, 0.5, 0.5]
    assert m["cumulative_oracle_acc"] == [0.25, 0.5, 0.75]
    # turn 2 among {p2, p3, p4} (wrong at turn 1): p2 right -> 1/3; turn 3 among {p3, p4}: p4 -> 1/2
    assert m["turn_acc_after_wrong"][0] is None
    assert m["turn_acc_after_wrong"][1] == pytest.approx(1 / 3)
    assert m["turn_acc_after_wrong"][2] == 0.5
    # 8 transitions: p2 W->R, R->W; p4 W->R
    assert m["flips"] == {"wrong_to_right": 0.25, "right_to_wrong": 0.125, "wrong_to_right_n": 2,
                          "right_to_wrong_n": 1, "transitions": 8}
    assert m["no_answer_rate"] == pytest.approx(2 / 12)
    # turn 1 -> 2: p2 wrong -> right; turn 2 -> 3: p4 wrong -> right, p2 right -> wrong
    assert m["flows"] == {"i2c": [0.25, 0.25], "c2i": [0.0, 0.25]}
    assert (m["flows"]["i2c"][0], m["flows"]["c2i"][0]) == (m["d_i2c"], m["d_c2i"])


def test_named_functions_agree_with_hand_values():
    chains = [e["turns"] for e in EPISODES]
    assert pass_at(chains) == 0.75
    assert majority_correct(chains) == 0.5
    assert turn_accuracy(EPISODES) == [0.25, 0.5, 0.5]
    assert cumulative_oracle_accuracy(EPISODES) == [0.25, 0.5, 0.75]
    assert flip_counts(EPISODES)["wrong_to_right_n"] == 2


def test_majority_of_no_answers_is_wrong_even_with_reward():
    # Inconsistent record on purpose: no answer never wins, so the group is wrong.
    group = [{"answer": None, "reward": 1.0}, {"answer": None, "reward": 1.0}]
    assert majority_correct([group]) == 0.0
    assert pass_at([group]) == 1.0


def test_after_wrong_undefined_is_none_and_partial_reward_is_wrong():
    eps = [ep("a", ["5"], ["5", "5"]), ep("b", ["5"], ["5", "4"])]
    assert accuracy_after_wrong(eps) == [None, None]
    half = {"problem_id": "h", "parallel": [{"answer": "5", "reward": 0.5}],
            "turns": [{"answer": "5", "reward": 0.5}]}
    assert episode_metrics([half])["m1@t1"] == 0.0


def test_single_turn_single_sample():
    m = episode_metrics([ep("a", ["5"], ["5"]), ep("b", ["4"], ["4"])])
    assert (m["m1@t1"], m["p1@t1"], m["turn_acc"]) == (0.5, 0.5, [0.5])
    assert m["flips"]["wrong_to_right"] is None and m["flips"]["transitions"] == 0
    assert m["turn_acc_after_wrong"] == [None]
    assert m["flows"] == {"i2c": [], "c2i": []}


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="no episodes"):
        episode_metrics([])
    with pytest.raises(ValueError, match="odd-T"):
        episode_metrics([ep("a", ["5"], ["5", "5"]), ep("odd-T", ["5"], ["5"])])
    with pytest.raises(ValueError, match="odd-K"):
        episode_metrics([ep("a", ["5"], ["5"]), ep("odd-K", ["5", "5"], ["5"])])
    with pytest.raises(ValueError, match="no-turns"):
        episode_metrics([ep("no-turns", ["5"], [])])
    with pytest.raises(ValueError, match="several models"):
        episode_metrics([ep("a", ["5"], ["5"], "x"), ep("b", ["5"], ["5"], "y")])


def test_metrics_by_model_groups_in_order():
    eps = [ep("a", ["5"], ["5"], "rise"), ep("a", ["4"], ["4"], "base"), ep("b", ["4"], ["4"], "rise")]
    out = metrics_by_model(eps)
    assert list(out) == ["rise", "base"]
    assert (out["rise"]["m1@t1"], out["rise"]["n"], out["base"]["m1@t1"]) == (0.5, 2, 0.0)


def test_bootstrap_ci():
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    vals = [1.0] * 30 + [0.0] * 70
    lo, hi = bootstrap_ci(vals, n_boot=300, seed=1)
    assert lo < 0.3 < hi and 0.0 <= lo and hi <= 1.0
    assert bootstrap_ci(vals, n_boot=300, seed=1) == (lo, hi)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def _ep(turn_rewards, parallel=None):
    turns = [{"answer": str(i) if r == 1.0 else "x", "reward": r} for i, r in enumerate(turn_rewards)]
    return {"parallel": parallel or [turns[0]], "turns": turns}


# SCoRe metrics (Kumar et al. 2024), turn 1 -> 2: rows of (turn-1, turn-2) correctness
@pytest.mark.parametrize("pairs,expected", [
    ([(0, 1), (0, 0), (1, 1), (1, 0)], dict(acc1=0.5, acc2=0.5, d=0.0, i2c=0.25, c2i=0.25, fix=0.5)),
    ([(0, 1), (0, 1), (0, 0), (1, 1)], dict(acc1=0.25, acc2=0.75, d=0.5, i2c=0.5, c2i=0.0, fix=2 / 3)),
    ([(1, 1), (1, 0)], dict(acc1=1.0, acc2=0.5, d=-0.5, i2c=0.0, c2i=0.5, fix=None)),
])
def test_self_correction_metrics(pairs, expected):
    from rise.metrics import self_correction

    m = self_correction([_ep([float(a), float(b)]) for a, b in pairs])
    got = dict(acc1=m["acc@t1"], acc2=m["acc@t2"], d=m["d_t1_t2"], i2c=m["d_i2c"], c2i=m["d_c2i"], fix=m["fix_rate"])
    for k, v in expected.items():
        assert got[k] == (pytest.approx(v) if v is not None else None), k


def test_fix_rate_is_accuracy_at_turn_2_after_a_wrong_turn_1():
    eps = [_ep([0.0, 1.0, 0.0]), _ep([0.0, 0.0, 1.0]), _ep([1.0, 0.0, 1.0]), _ep([0.0, 1.0, 1.0])]
    m = episode_metrics(eps)
    assert m["fix_rate"] == pytest.approx(m["turn_acc_after_wrong"][1])
    assert m["acc@t2"] == m["turn_acc"][1]


def test_one_turn_chain_has_no_turn_2_metrics():
    from rise.metrics import self_correction

    m = self_correction([_ep([1.0]), _ep([0.0])])
    assert m["acc@t1"] == 0.5 and m["acc@t2"] is None and m["fix_rate"] is None


def test_headline_intervals_bracket_the_metric_and_are_reproducible():
    eps = [_ep([float(i % 3 == 0), float(i % 2 == 0)]) for i in range(60)]
    m = episode_metrics(eps)
    for key in ("m1@t1", "m1@t2", "p1@t2", "m1@t1", "p1@t1"):
        lo, hi = m["ci95"][key]
        assert lo <= m[key] <= hi and hi - lo > 0.05, key
    assert episode_metrics(eps)["ci95"] == m["ci95"]


def test_report_shows_self_correction_and_intervals():
    from rise.report import render_markdown

    eps = [_ep([0.0, 1.0]), _ep([1.0, 1.0]), _ep([0.0, 0.0]), _ep([1.0, 0.0])]
    md = render_markdown({"m": episode_metrics(eps)})
    assert "Δi→c" in md and "fix rate" in md and "[95% CI]" in md
    row = [line for line in md.splitlines() if line.startswith("| `m`")][1]
    assert "| 50.0 | 50.0 | 0.0 | 25.0 | 25.0 | 50.0 |" in row
