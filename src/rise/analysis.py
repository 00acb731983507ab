"""The paper's analyses over evaluation episodes. Standard library only.

- `beyond_pass_at_b`: problems that B parallel turn-1 samples never solve but a sequential chain
  solves within T turns (paper, Sec. 6: RISE is not just sampling more).
- `edit_sizes`: how much a response changes between consecutive attempts, to tell small fixes
  from rewrites (paper, Sec. 6 qualitative analysis).
- `eval_analyses`: both, per evaluated model, from the episodes an evaluation already drew
  (`rise eval` with `analyses: true`; no extra generation, so B goes up to the eval's K).
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from itertools import pairwise

EDIT_BINS = (0.0, 0.05, 0.2, 0.5, 1.0)   # edit fraction bins: identical | small fix | partial | rewrite


def edit_fraction(a: str, b: str) -> float:
    """Share of characters changed from a to b: 1 - difflib similarity ratio, in [0, 1]."""
    if a == b:
        return 0.0
    return 1.0 - difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def bin_label(lo: float, hi: float) -> str:
    return "identical" if hi == 0.0 else f"{lo:.0%}-{hi:.0%}"


def edit_sizes(episodes: Sequence[dict], bins: Sequence[float] = EDIT_BINS) -> dict:
    """Distribution of edit fractions between consecutive turns of each chain.

    Returns {"all": {bin: share}, "wrong_to_right": {bin: share}, "n_all", "n_wrong_to_right",
    "median_all", "median_wrong_to_right"}; transitions are counted after a wrong turn only
    (those are the ones a model is asked to improve).
    """
    after_wrong, fixed = [], []
    for ep in episodes:
        turns = ep["turns"]
        for a, b in pairwise(turns):
            if a["reward"] == 1.0:
                continue
            frac = edit_fraction(a["text"], b["text"])
            after_wrong.append(frac)
            if b["reward"] == 1.0:
                fixed.append(frac)
    return {
        "all": histogram(after_wrong, bins), "wrong_to_right": histogram(fixed, bins),
        "n_all": len(after_wrong), "n_wrong_to_right": len(fixed),
        "median_all": median(after_wrong), "median_wrong_to_right": median(fixed),
    }


def histogram(values: Sequence[float], bins: Sequence[float]) -> dict[str, float]:
    """Share of `values` per bin: [0, 0] exactly-zero, then (lo, hi] for consecutive bin edges."""
    labels = [bin_label(0.0, 0.0)] + [bin_label(lo, hi) for lo, hi in pairwise(bins)]
    counts = dict.fromkeys(labels, 0)
    for v in values:
        if v == 0.0:
            counts[labels[0]] += 1
            continue
        for (lo, hi), label in zip(pairwise(bins), labels[1:], strict=True):
            if lo < v <= hi:
                counts[label] += 1
                break
    n = len(values)
    return {k: (c / n if n else 0.0) for k, c in counts.items()}


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def beyond_pass_at_b(parallel: Sequence[dict], sequential: Sequence[dict], budgets: Sequence[int]) -> dict[int, float]:
    """For each B: the fraction of problems where none of the first B turn-1 samples in
    `parallel` episodes is correct but the chain of `sequential` episodes is correct at some turn.

    Episodes are matched by problem_id; `parallel` needs at least max(budgets) samples.
    """
    seq = {ep["problem_id"]: any(t["reward"] == 1.0 for t in ep["turns"]) for ep in sequential}
    out = {}
    for b in budgets:
        hits, n = 0, 0
        for ep in parallel:
            if ep["problem_id"] not in seq:
                continue
            if len(ep["parallel"]) < b:
                raise ValueError(f"problem {ep['problem_id']}: {len(ep['parallel'])} parallel samples, need {b}")
            n += 1
            if seq[ep["problem_id"]] and not any(s["reward"] == 1.0 for s in ep["parallel"][:b]):
                hits += 1
        out[b] = hits / n if n else 0.0
    return out


def eval_analyses(by_model: dict[str, Sequence[dict]], reference: str = "base") -> dict[str, dict]:
    """Per model: "beyond_own" {B: share} (its own first B parallel samples never solve the
    problem, its chain does), "beyond_reference" {B: share} (the same against the `reference`
    model's parallel samples, when that model was evaluated), and "edit_sizes". B = 1..K; keys
    are strings, as they read back from JSON."""
    ref = by_model.get(reference)
    out = {}
    for name, eps in by_model.items():
        budgets = list(range(1, min(len(ep["parallel"]) for ep in eps) + 1))
        entry = {"beyond_own": _str_keys(beyond_pass_at_b(eps, eps, budgets)), "edit_sizes": edit_sizes(eps)}
        if ref is not None and name != reference:
            ref_budgets = [b for b in budgets if b <= min(len(ep["parallel"]) for ep in ref)]
            entry["beyond_reference"] = _str_keys(beyond_pass_at_b(ref, eps, ref_budgets))
        out[name] = entry
    return out


def _str_keys(d: dict) -> dict[str, float]:
    return {str(k): v for k, v in d.items()}
