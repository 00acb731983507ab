"""Rollouts -> weighted training examples (the `convert` arrow). Standard library only.

Each turn of a rollout becomes one example whose context is the conversation up to that turn and
whose target is that turn's action alone (paper, Sec. 4.2; official `workflow_convert.py`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rise.episodes import with_response
from rise.errors import InputError
from rise.weighting import keep_turn, rwr_weight

CONVERT_MODES = ("rise", "classic", "refiner")


@dataclass
class ConvertConfig:
    # rise: multi-turn examples; classic: single-turn SFT on the correct actions; refiner: a
    # GLoRE-style refiner's data (a wrong attempt in context -> the correct action)
    mode: str = "rise"
    tau: float = 0.4                 # temperature of exp(r / tau); official 0.4
    criterion: str = "all"           # all | better | best | success
    drop_wrong: bool = False         # drop turns whose action is not correct (our probes: +3-7 points)
    max_word_repeats: int = 150      # official filter: a word repeated more often marks a degenerate sample
    max_token_chars: int = 300       # official filter: a "word" longer than this marks garbage
    remove_duplication: bool = False # official --remove_duplication: drop a turn whose action repeats an earlier one
    max_turn: int | None = None      # keep turns <= max_turn only (None: all)

    def __post_init__(self):
        if self.mode not in CONVERT_MODES:
            raise InputError(f"convert.mode must be one of {', '.join(CONVERT_MODES)}, got {self.mode!r}")
        if self.max_turn is not None and self.max_turn < 1:
            raise InputError(f"convert.max_turn must be >= 1, got {self.max_turn}")
        if self.tau <= 0:
            raise InputError(f"convert.tau must be > 0, got {self.tau}")
        from rise.weighting import CRITERIA

        if self.criterion not in CRITERIA:
            raise InputError(f"convert.criterion must be one of {', '.join(CRITERIA)}, got {self.criterion!r}")
        if self.max_word_repeats < 1 or self.max_token_chars < 1:
            raise InputError("convert.max_word_repeats and convert.max_token_chars must be >= 1")


def is_degenerate(text: str, max_word_repeats: int, max_token_chars: int) -> bool:
    """Official sample filter: a word occurring > max_word_repeats times or longer than max_token_chars."""
    counts: dict[str, int] = defaultdict(int)
    for word in text.split():
        if len(word) > max_token_chars:
            return True
        counts[word] += 1
        if counts[word] > max_word_repeats:
            return True
    return False


# field -> accepted types of a rollout record (the fields conversion reads)
ROLLOUT_FIELDS = {"problem_id": (str,), "turn": (int,), "messages": (list,), "action": (dict,)}
ACTION_FIELDS = {"text": (str,), "reward": (int, float)}


def validate_rollout(rec: dict, where: str) -> dict:
    """Check the fields conversion needs; a bad record raises ValueError naming `where` and the field."""
    for name, types in ROLLOUT_FIELDS.items():
        if name not in rec:
            raise InputError(f"{where}: missing field '{name}'")
        if not isinstance(rec[name], types) or isinstance(rec[name], bool):
            raise InputError(f"{where}: field '{name}' should be {types[0].__name__}, got {type(rec[name]).__name__}")
    for name, types in ACTION_FIELDS.items():
        value = rec["action"].get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise InputError(f"{where}: field 'action.{name}' missing or not {types[0].__name__}")
    for i, m in enumerate(rec["messages"]):
        if (not isinstance(m, dict) or not isinstance(m.get("content"), str)
                or m.get("role") not in ("system", "user", "assistant")):
            raise InputError(f"{where}: messages[{i}] is not a chat message with role and content")
    return rec


def read_rollouts(paths: Iterable[str]) -> list[dict]:
    """All rollout records of `paths`, each validated (errors name file:line and the field)."""
    from rise.records import iter_jsonl_numbered

    return [validate_rollout(rec, f"{path}:{n}") for path in paths for n, rec in iter_jsonl_numbered(path)]


def group_rollouts(records: Iterable[dict]) -> list[list[dict]]:
    """Group turn records by rollout (problem id + rollout index), ordered by turn."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in records:
        groups[(rec["problem_id"], rec.get("rollout", 0))].append(rec)
    return [sorted(g, key=lambda r: r["turn"]) for _, g in sorted(groups.items())]


def context_rewards(turns: list[dict]) -> list[float | None]:
    """Per turn, the reward of the attempt its context ends with: turn i-1's `next` (the response
    the conversation continued with), or its action where a record has no `next`. None at turn 1."""
    out: list[float | None] = [None]
    for prev in turns[:-1]:
        out.append(float((prev.get("next") or prev["action"])["reward"]))
    return out


def rollout_examples(turns: list[dict], cfg: ConvertConfig) -> list[dict]:
    """Training examples of one rollout: one per kept turn, weighted exp(r / tau)."""
    rewards = [float(t["action"]["reward"]) for t in turns]
    in_context = context_rewards(turns)
    out, seen = [], set()
    for i, turn in enumerate(turns):
        action = turn["action"]
        if not keep_turn(rewards, i, cfg.criterion, in_context):
            continue
        if cfg.remove_duplication:
            if action["text"] in seen:
                continue
            seen.add(action["text"])
        if cfg.drop_wrong and rewards[i] != 1.0:
            continue
        if is_degenerate(action["text"], cfg.max_word_repeats, cfg.max_token_chars):
            continue
        out.append({
            "messages": with_response(turn["messages"], action["text"]),
            "weight": rwr_weight(rewards[i], cfg.tau),
            "reward": rewards[i],
            "problem_id": turn["problem_id"],
            "turn": turn["turn"],
            "source": action.get("source", "policy"),
        })
    return out


def classic_examples(turns: list[dict], cfg: ConvertConfig) -> list[dict]:
    """The "Classic" baseline (paper, Table 1): single-turn SFT on the same data. Every correct
    action of the rollout becomes an example in the turn-1 context (the problem alone), weight 1."""
    context = turns[0]["messages"]
    out = []
    for turn in turns:
        action = turn["action"]
        if action["reward"] != 1.0 or is_degenerate(action["text"], cfg.max_word_repeats, cfg.max_token_chars):
            continue
        out.append({"messages": with_response(context, action["text"]), "weight": 1.0, "reward": 1.0,
                    "problem_id": turn["problem_id"], "turn": 1, "source": action.get("source", "policy")})
    return out


def refiner_examples(turns: list[dict], cfg: ConvertConfig) -> list[dict]:
    """A GLoRE-style refiner's data (Havrilla et al. 2024): each state whose context ends with a
    wrong attempt (turn >= 2) and whose action is correct becomes an example, context -> action,
    weight 1; the refiner learns to improve a given answer, never to answer from scratch."""
    in_context = context_rewards(turns)
    out = []
    for turn, ctx in zip(turns, in_context, strict=True):
        action = turn["action"]
        if ctx is None or ctx == 1.0 or action["reward"] != 1.0:
            continue
        if is_degenerate(action["text"], cfg.max_word_repeats, cfg.max_token_chars):
            continue
        out.append({"messages": with_response(turn["messages"], action["text"]), "weight": 1.0, "reward": 1.0,
                    "problem_id": turn["problem_id"], "turn": turn["turn"], "source": action.get("source", "policy")})
    return out


PER_ROLLOUT = {"rise": rollout_examples, "classic": classic_examples, "refiner": refiner_examples}


def convert(records: Iterable[dict], cfg: ConvertConfig) -> list[dict]:
    """All training examples of a rollout file, in a deterministic order."""
    per_rollout = PER_ROLLOUT[cfg.mode]
    return [ex for turns in group_rollouts(records) for ex in per_rollout(kept_turns(turns, cfg), cfg)]


def kept_turns(turns: list[dict], cfg: ConvertConfig) -> list[dict]:
    """The turns of one rollout up to `max_turn` (all of them when it is None)."""
    return turns if cfg.max_turn is None else [t for t in turns if t["turn"] <= cfg.max_turn]
