"""Reward-weighted regression weights and turn-selection criteria. Standard library only.

RISE trains every kept turn with weight w = exp(r / tau) (paper, Eq. 4.2; official
`workflow_convert.py`): with tau = 0.4 a correct turn (r = 1) weighs 12.18, a wrong one (r = 0)
1.0, an unparseable one (r = -1) 0.082. Wrong turns are kept under the official criterion `all`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

CRITERIA = ("all", "better", "best", "success")


def rwr_weight(reward: float, tau: float) -> float:
    """w = exp(r / tau), the reward-weighted-regression weight of one turn (scalar)."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    return math.exp(reward / tau)


def keep_turn(rewards: Sequence[float], i: int, criterion: str) -> bool:
    """Whether turn i (0-based) of a rollout with per-turn `rewards` becomes a training example.

    all: every turn. better: r_i > r_{i-1}. best: r_i >= every earlier r. success: r_i == 1.
    The first turn is always kept, except under `success` (official convert rules).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; known: {', '.join(CRITERIA)}")
    r = rewards[i]
    if criterion == "success":
        return r == 1.0
    if i == 0 or criterion == "all":
        return True
    if criterion == "better":
        return r > rewards[i - 1]
    return all(r >= earlier for earlier in rewards[:i])  # best
