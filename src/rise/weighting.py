"""Reward-weighted regression weights and turn-selection criteria. Standard library only.

RISE trains every kept turn with weight w = exp(r / tau) (paper, Eq. 4.2; official
`workflow_convert.py`): with tau = 0.4 a correct turn (r = 1) weighs 12.18, a wrong one (r = 0)
1.0, an unparseable one (r = -1) 0.082. Wrong turns are kept under the official criterion `all`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from rise.errors import InputError

CRITERIA = ("all", "better", "best", "success")


def rwr_weight(reward: float, tau: float) -> float:
    """w = exp(r / tau), the reward-weighted-regression weight of one turn (scalar)."""
    if tau <= 0:
        raise InputError(f"tau must be > 0, got {tau}")
    return math.exp(reward / tau)


def keep_turn(rewards: Sequence[float], i: int, criterion: str,
              context_rewards: Sequence[float] | None = None) -> bool:
    """Whether turn i (0-based) of a rollout becomes a training example.

    `rewards[i]` is the reward of turn i's action (the training target); `context_rewards[i]` is
    the reward of the on-policy attempt that turn i's context ends with (turn i-1's `next`), the
    attempt the action improves on. With improved actions (distillation) every action is correct,
    so comparing actions with actions would keep turn 1 only; the comparison is with the attempt
    in context. Without `context_rewards`, the previous actions stand in (official convert rules
    when the conversation continues with the action).

    all: every turn. better: r_i > the attempt in context. best: r_i >= every earlier attempt.
    success: r_i == 1. The first turn is always kept, except under `success`.
    """
    if criterion not in CRITERIA:
        raise InputError(f"unknown criterion {criterion!r}; known: {', '.join(CRITERIA)}")
    r = rewards[i]
    if criterion == "success":
        return r == 1.0
    if i == 0 or criterion == "all":
        return True
    ctx = list(context_rewards) if context_rewards is not None else [None] + list(rewards[:-1])
    if criterion == "better":
        return r > ctx[i]
    return all(r >= earlier for earlier in ctx[1:i + 1])  # best: every attempt seen so far
