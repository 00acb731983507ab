"""Evaluation metrics of RISE under the paper's names, computed from eval episode records.

An episode (`episodes.jsonl`, see docs/design.md) holds `parallel`: K independent turn-1 samples,
and `turns`: one chain of T sequential turns run without early stop. Every response carries an
already normalised `answer` (None when it gave none) and a `reward`; it is correct iff
`reward == 1.0`. The paper's metrics (fractions in [0, 1]):

- m1@t1: turn 1 of the chain is correct (`turns[0]`).
- mK@t1: the majority answer of the K parallel samples is correct (compute-matched baseline).
- pK@t1: any of the K parallel samples is correct.
- m1@tT: the majority answer over the T turns of the chain is correct (no oracle).
- p1@tT: any turn of the chain is correct (oracle early stop).

The official code has no majority-vote code, so the tie rule is ours; see `TIE_RULE`.
Standard library only.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

TIE_RULE = (
    "Majority votes count normalised answers; a response with no answer never votes. "
    "Among answers tied for the most votes, the one whose latest occurrence is most recent wins "
    "(in a sequential chain the later turn is the more refined attempt; parallel samples have an "
    "arbitrary but fixed order, so the rule stays deterministic). If no response has an answer "
    "there is no majority, which counts as wrong."
)


def majority_vote(answers: Sequence[str | None],
                  keys: Sequence[str | None] | None = None) -> int | None:
    """Index of the winning response, or None when no response has an answer.

    `answers` are normalised answers (None = no answer); `keys`, when given, replace them as the
    voting keys (same length), so callers can vote on a canonical form while keeping the originals.
    Tie rule (`TIE_RULE`): among keys tied for the most votes, the one whose latest occurrence is
    most recent wins, and the index of that latest occurrence is returned. None never votes, so it
    can never beat a real answer; all None -> None (no answer: wrong).
    """
    if keys is None:
        keys = answers
    elif len(keys) != len(answers):
        raise ValueError(f"majority_vote: {len(keys)} keys for {len(answers)} answers")
    counts: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        last[key] = i
    if not counts:
        return None
    winner = max(counts, key=lambda k: (counts[k], last[k]))
    return last[winner]


def is_correct(response: Mapping[str, Any] | None) -> bool:
    """A response is correct iff its reward is exactly 1.0 (partial or missing rewards are wrong)."""
    return response is not None and response.get("reward") == 1.0


def _fraction(num: float, den: int) -> float | None:
    return num / den if den else None


def pass_at(groups: Sequence[Sequence[Mapping[str, Any]]]) -> float:
    """Fraction of groups (one list of responses per episode) in which any response is correct."""
    if not groups:
        raise ValueError("pass_at: no groups")
    return sum(any(is_correct(r) for r in g) for g in groups) / len(groups)


def majority_correct(groups: Sequence[Sequence[Mapping[str, Any]]]) -> float:
    """Fraction of groups (one list of responses per episode) whose majority-vote winner is correct.

    The winner is picked by `majority_vote` over the responses' `answer`; no winner is wrong.
    """
    if not groups:
        raise ValueError("majority_correct: no groups")
    hits = 0
    for g in groups:
        idx = majority_vote([r.get("answer") for r in g])
        hits += idx is not None and is_correct(g[idx])
    return hits / len(groups)


def turn_accuracy(episodes: Sequence[Mapping[str, Any]]) -> list[float]:
    """Accuracy at each turn without early stop: a list of length T, entry t-1 for turn t."""
    n, T = len(episodes), len(episodes[0]["turns"])
    return [sum(is_correct(e["turns"][t]) for e in episodes) / n for t in range(T)]


def cumulative_oracle_accuracy(episodes: Sequence[Mapping[str, Any]]) -> list[float]:
    """Accuracy with oracle early stop within the first t turns, t = 1..T (list of length T).

    Entry t-1 is the fraction of episodes with a correct turn among turns 1..t; the last entry
    equals p1@tT and the first equals m1@t1.
    """
    n, T = len(episodes), len(episodes[0]["turns"])
    out, solved = [], [False] * n
    for t in range(T):
        solved = [s or is_correct(e["turns"][t]) for s, e in zip(solved, episodes, strict=True)]
        out.append(sum(solved) / n)
    return out


def accuracy_after_wrong(episodes: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """Accuracy at turn t+1 among episodes whose turn t was wrong, aligned with `turn_accuracy`.

    A list of length T: entry 0 is None (turn 1 has no earlier turn), entry t is the accuracy at
    turn t+1 given turn t wrong, None where no episode was wrong at turn t. This is the direct
    measure of self-correction that the per-turn accuracy hides.
    """
    T = len(episodes[0]["turns"])
    out: list[float | None] = [None]
    for t in range(1, T):
        wrong = [e for e in episodes if not is_correct(e["turns"][t - 1])]
        out.append(_fraction(sum(is_correct(e["turns"][t]) for e in wrong), len(wrong)))
    return out


def flip_counts(episodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Correctness flips between consecutive turns of the chain.

    Returns {"wrong_to_right", "right_to_wrong"} as fractions of all n*(T-1) transitions (None when
    T == 1), their raw counts "wrong_to_right_n" and "right_to_wrong_n", and "transitions".
    """
    w2r = r2w = transitions = 0
    for e in episodes:
        flags = [is_correct(r) for r in e["turns"]]
        for a, b in pairwise(flags):
            transitions += 1
            w2r += (not a) and b
            r2w += a and not b
    return {"wrong_to_right": _fraction(w2r, transitions),
            "right_to_wrong": _fraction(r2w, transitions),
            "wrong_to_right_n": w2r, "right_to_wrong_n": r2w, "transitions": transitions}


def no_answer_rate(episodes: Sequence[Mapping[str, Any]]) -> float:
    """Fraction of all sequential turns (n*T of them) whose answer is None."""
    turns = [r for e in episodes for r in e["turns"]]
    return sum(r.get("answer") is None for r in turns) / len(turns)


def _check_shapes(episodes: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(K, T) shared by all episodes; a ValueError names the first problem that disagrees."""
    if not episodes:
        raise ValueError("episode_metrics: no episodes")
    K = T = None
    models = set()
    for e in episodes:
        pid = e.get("problem_id", "?")
        for key in ("parallel", "turns"):
            if not isinstance(e.get(key), list):
                raise ValueError(f"episode {pid!r}: missing or non-list {key!r}")
        k, t = len(e["parallel"]), len(e["turns"])
        if t == 0:
            raise ValueError(f"episode {pid!r}: no sequential turns")
        if K is None:
            K, T = k, t
        elif (k, t) != (K, T):
            raise ValueError(f"episode {pid!r}: K={k}, T={t} differs from K={K}, T={T} "
                             "of the first episode")
        if "model" in e:
            models.add(e["model"])
    if len(models) > 1:
        raise ValueError(f"episode_metrics: episodes of several models {sorted(map(str, models))}; "
                         "use metrics_by_model")
    return K, T


def episode_metrics(episodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """All metrics of one model over its eval episodes, under the paper's names.

    Keys: "m1@t1", f"m{K}@t1", f"p{K}@t1" (omitted when K == 0), f"m1@t{T}", f"p1@t{T}",
    "turn_acc" (length T), "cumulative_oracle_acc" (length T), "turn_acc_after_wrong" (length T,
    entry 0 None), "flips", "flows" (`turn_flows`, length T-1 each), "no_answer_rate", "n", "K",
    "T". Where names coincide (K == 1 or T == 1) the values coincide too for consistent records;
    "m1@t1" is always turn 1 of the chain.
    Raises ValueError on zero episodes or episodes with differing K or T.
    """
    K, T = _check_shapes(episodes)
    chains = [e["turns"] for e in episodes]
    out: dict[str, Any] = {"n": len(episodes), "K": K, "T": T}
    if K:
        samples = [e["parallel"] for e in episodes]
        out[f"m{K}@t1"] = majority_correct(samples)
        out[f"p{K}@t1"] = pass_at(samples)
    out[f"m1@t{T}"] = majority_correct(chains)
    out[f"p1@t{T}"] = pass_at(chains)
    out["turn_acc"] = turn_accuracy(episodes)
    out["m1@t1"] = out["turn_acc"][0]
    out["cumulative_oracle_acc"] = cumulative_oracle_accuracy(episodes)
    out["turn_acc_after_wrong"] = accuracy_after_wrong(episodes)
    out["flips"] = flip_counts(episodes)
    out["no_answer_rate"] = no_answer_rate(episodes)
    out.update(self_correction(episodes))
    out["flows"] = turn_flows(episodes)
    out["ci95"] = headline_intervals(episodes, K, T)
    return out


def self_correction(episodes: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """SCoRe's self-correction metrics (Kumar et al. 2024) of the no-oracle chain, turn 1 -> 2.

    acc@t1, acc@t2: accuracy at turns 1 and 2; d_t1_t2 = acc@t2 - acc@t1; d_i2c: share of all
    problems wrong at turn 1 and right at turn 2; d_c2i: right then wrong; fix_rate =
    d_i2c / (1 - acc@t1), the share of wrong first answers fixed at turn 2 (None when turn 1 is
    always right). The turn-2 keys are None for a one-turn chain.
    """
    n = len(episodes)
    first = [is_correct(e["turns"][0]) for e in episodes]
    acc1 = sum(first) / n
    if len(episodes[0]["turns"]) < 2:
        return {"acc@t1": acc1, "acc@t2": None, "d_t1_t2": None, "d_i2c": None, "d_c2i": None, "fix_rate": None}
    second = [is_correct(e["turns"][1]) for e in episodes]
    acc2 = sum(second) / n
    i2c = sum((not a) and b for a, b in zip(first, second, strict=True)) / n
    c2i = sum(a and not b for a, b in zip(first, second, strict=True)) / n
    return {"acc@t1": acc1, "acc@t2": acc2, "d_t1_t2": acc2 - acc1, "d_i2c": i2c, "d_c2i": c2i,
            "fix_rate": _fraction(i2c * n, n - sum(first))}


def turn_flows(episodes: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Flows between consecutive turns of the chain, as shares of all problems: entry t-2 of
    "i2c" is the share wrong at turn t-1 and right at turn t (t = 2..T), "c2i" the reverse. The
    first entries are SCoRe's d_i2c and d_c2i; the per-turn net gain is i2c - c2i."""
    n, T = len(episodes), len(episodes[0]["turns"])
    flags = [[is_correct(r) for r in e["turns"]] for e in episodes]
    return {"i2c": [sum((not f[t - 1]) and f[t] for f in flags) / n for t in range(1, T)],
            "c2i": [sum(f[t - 1] and not f[t] for f in flags) / n for t in range(1, T)]}


def headline_intervals(episodes: Sequence[Mapping[str, Any]], K: int, T: int,
                       n_boot: int = 1000) -> dict[str, list[float]]:
    """95% percentile-bootstrap intervals of the headline metrics, resampling problems.

    Each metric is a mean of per-problem 0/1 outcomes; one seed for all of them, so every metric
    is resampled with the same problem indices (paired intervals). {name: [lo, hi]}.
    """
    per_problem: dict[str, list[float]] = {
        "m1@t1": [float(is_correct(e["turns"][0])) for e in episodes],
        f"m1@t{T}": [majority_correct([e["turns"]]) for e in episodes],
        f"p1@t{T}": [pass_at([e["turns"]]) for e in episodes],
    }
    if K:
        per_problem[f"m{K}@t1"] = [majority_correct([e["parallel"]]) for e in episodes]
        per_problem[f"p{K}@t1"] = [pass_at([e["parallel"]]) for e in episodes]
    return {name: list(bootstrap_ci(vals, n_boot=n_boot, seed=0)) for name, vals in per_problem.items()}


def metrics_by_model(episodes: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Group episodes by their "model" field (first-seen order) and compute `episode_metrics`."""
    groups: dict[str, list] = {}
    for e in episodes:
        groups.setdefault(str(e.get("model", "model")), []).append(e)
    return {name: episode_metrics(group) for name, group in groups.items()}


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-episode values (e.g. 0/1 correctness).

    Seeded, so a report is reproducible; with a few hundred episodes an accuracy's 95% interval
    is several points wide, which is what a reader needs to judge a small difference.
    """
    if not values:
        raise ValueError("bootstrap_ci: no values")
    rng, n = random.Random(seed), len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(n_boot))
    lo = means[int(alpha / 2 * (n_boot - 1))]
    hi = means[int(round((1 - alpha / 2) * (n_boot - 1)))]
    return lo, hi
