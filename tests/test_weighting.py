"""RWR weights, selection criteria, rollout conversion."""
import math

import pytest

from rise.convert import ConvertConfig, convert, is_degenerate
from rise.weighting import keep_turn, rwr_weight


@pytest.mark.parametrize("reward,tau,expected", [
    (1.0, 0.4, 12.182494), (0.0, 0.4, 1.0), (-1.0, 0.4, 0.082085), (1.0, 1.0, math.e),
])
def test_rwr_weight(reward, tau, expected):
    assert rwr_weight(reward, tau) == pytest.approx(expected, rel=1e-6)


def test_tau_must_be_positive():
    with pytest.raises(ValueError):
        rwr_weight(1.0, 0.0)


# rewards of a rollout -> kept turn indices, per criterion (official workflow_convert rules)
@pytest.mark.parametrize("criterion,rewards,kept", [
    ("all", [0, 0, 1], [0, 1, 2]),
    ("better", [0, 0, 1], [0, 2]),
    ("better", [-1, 0, 0, 1], [0, 1, 3]),
    ("best", [0, -1, 0, 1], [0, 2, 3]),
    ("best", [1, 0], [0]),
    ("success", [0, 0, 1], [2]),
    ("success", [0, -1], []),
])
def test_keep_turn(criterion, rewards, kept):
    assert [i for i in range(len(rewards)) if keep_turn(rewards, i, criterion)] == kept


def test_unknown_criterion():
    with pytest.raises(ValueError, match="criterion"):
        keep_turn([0], 0, "most")


def _turn(pid, turn, reward, text="x"):
    return {"problem_id": pid, "turn": turn, "messages": [{"role": "user", "content": f"q{pid}"}],
            "action": {"text": text, "answer": None, "reward": reward, "source": "policy"}}


def test_convert_one_example_per_turn_with_weights():
    recs = [_turn("b", 1, 0.0), _turn("a", 2, 1.0), _turn("a", 1, -1.0)]
    exs = convert(recs, ConvertConfig(tau=0.4))
    assert [(e["problem_id"], e["turn"]) for e in exs] == [("a", 1), ("a", 2), ("b", 1)]
    assert [round(e["weight"], 4) for e in exs] == [0.0821, 12.1825, 1.0]
    assert exs[1]["messages"][-1] == {"role": "assistant", "content": "x"}


def test_convert_drop_wrong_and_degenerate():
    recs = [_turn("a", 1, 0.0), _turn("a", 2, 1.0), _turn("c", 1, 1.0, text="ha " * 200)]
    exs = convert(recs, ConvertConfig(drop_wrong=True))
    assert [(e["problem_id"], e["turn"]) for e in exs] == [("a", 2)]


@pytest.mark.parametrize("text,bad", [("a b c", False), ("w " * 151, True), ("w " * 150, False), ("x" * 301, True)])
def test_degenerate_filter(text, bad):
    assert is_degenerate(text, 150, 300) is bad


def test_classic_mode_is_single_turn_sft_on_correct_actions():
    t1 = _turn("a", 1, 0.0)
    t2 = _turn("a", 2, 1.0, text="right")
    t2["messages"] = t1["messages"] + [{"role": "assistant", "content": "x"}, {"role": "user", "content": "fb"}]
    exs = convert([t1, t2], ConvertConfig(mode="classic"))
    assert len(exs) == 1
    assert exs[0]["messages"] == t1["messages"] + [{"role": "assistant", "content": "right"}]
    assert exs[0]["weight"] == 1.0


def _chain(pid, next_rewards, action_rewards):
    """One rollout whose turn t continued with an attempt of reward next_rewards[t-1]."""
    out = []
    for i, (nr, ar) in enumerate(zip(next_rewards, action_rewards, strict=True)):
        rec = _turn(pid, i + 1, ar, text=f"a{i + 1}")
        rec["next"] = {"text": f"n{i + 1}", "answer": None, "reward": nr}
        rec["messages"] = [{"role": "user", "content": f"q{pid}"}] + (
            [{"role": "assistant", "content": f"n{i}"}, {"role": "user", "content": "fb"}] if i else [])
        out.append(rec)
    return out


@pytest.mark.parametrize("next_rewards,action_rewards,max_turn,kept", [
    ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], None, [2, 3]),  # turn 1 has no attempt to refine
    ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], 2, [2]),        # max_turn: the first refinement only
    ([0.0, 0.0, 0.0], [1.0, 0.0, 1.0], None, [3]),     # a wrong action is not a refinement
    ([0.0, 1.0, 0.0], [1.0, 1.0, 1.0], None, [2]),     # a right attempt in context needs none
])
def test_refiner_mode_keeps_wrong_attempt_to_right_action(next_rewards, action_rewards, max_turn, kept):
    exs = convert(_chain("a", next_rewards, action_rewards), ConvertConfig(mode="refiner", max_turn=max_turn))
    assert [e["turn"] for e in exs] == kept
    assert all(e["weight"] == 1.0 and e["messages"][-1]["content"] == f"a{e['turn']}" for e in exs)
    assert all(e["messages"][1]["role"] == "assistant" for e in exs)  # the attempt to refine is in context


def test_max_turn_applies_to_every_mode():
    recs = _chain("a", [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert [e["turn"] for e in convert(recs, ConvertConfig(max_turn=2))] == [1, 2]
    with pytest.raises(ValueError, match="max_turn"):
        ConvertConfig(max_turn=0)


def _distilled(pid, rewards_next, action_reward=1.0, texts=None):
    """A rollout collected with improved actions: every action is correct (the reference), the
    conversation continues with the on-policy attempt, whose rewards are `rewards_next`."""
    out = []
    for i, r in enumerate(rewards_next):
        rec = _turn(pid, i + 1, action_reward, text=(texts[i] if texts else f"fix{i}"))
        rec["next"] = {"text": f"try{i}", "answer": None, "reward": r, "source": "policy"}
        out.append(rec)
    return out


# issue 10.2: compare each action with the attempt its context holds, not the previous action
@pytest.mark.parametrize("criterion,next_rewards,kept_turns", [
    ("better", [0, 0, 0, 0, 0], [1, 2, 3, 4, 5]),       # every state improved by the reference
    ("better", [0, 1], [1, 2]),
    ("best", [0, -1, 0], [1, 2, 3]),
    ("all", [0, 0, 0], [1, 2, 3]),
    ("success", [0, 0], [1, 2]),
])
def test_criteria_on_distilled_rollouts(criterion, next_rewards, kept_turns):
    exs = convert(_distilled("a", next_rewards), ConvertConfig(criterion=criterion))
    assert [e["turn"] for e in exs] == kept_turns


def test_better_drops_a_turn_no_better_than_its_context():
    # the on-policy attempt of turn 1 was already right: a turn-2 action that is right is no better
    recs = _distilled("a", [1.0, 0.0])
    exs = convert(recs, ConvertConfig(criterion="better"))
    assert [e["turn"] for e in exs] == [1]
    recs[1]["action"]["reward"] = 0.0  # a wrong action after a wrong attempt is no better either
    recs[0]["next"]["reward"] = 0.0
    assert [e["turn"] for e in convert(recs, ConvertConfig(criterion="better"))] == [1]


@pytest.mark.parametrize("flag,kept", [(False, [1, 2, 3]), (True, [1, 3])])
def test_remove_duplication(flag, kept):
    recs = _distilled("a", [0, 0, 0], texts=["same", "same", "other"])
    exs = convert(recs, ConvertConfig(remove_duplication=flag))
    assert [e["turn"] for e in exs] == kept


@pytest.mark.parametrize("key,value", [("criterion", "bestest"), ("mode", "glorious"), ("tau", 0.0)])
def test_convert_config_validates_at_construction(key, value):
    with pytest.raises(ValueError, match=f"convert.{key}"):
        ConvertConfig(**{key: value})
