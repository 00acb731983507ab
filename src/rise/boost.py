"""The boost step: single-turn SFT of a base that cannot yet answer the task (the `boost` stage).

The paper fine-tunes Llama-2 on single-turn data before RISE ("boost"), because RISE needs a
base that already answers in the task's format: from a base that is right in ~1% of the states
after a wrong turn, the first iteration mostly teaches the format, and its gain over the base
is that format, not self-correction (our SmolLM2 run; `../shared/docs/rise-reference.md`'s
probes: "a fair comparison starts from a base trained to convergence on single-turn data").

With `boost.problems: N`, `rise run` first fine-tunes the base on the reference solutions of N
training problems, the ones right after collection's `collect.limit` (so the problems RISE rolls
out on were never trained on), and the boosted model is then the run's `base`: every row of the
report (base, Self-Refine, Classic, the refiner, RISE) starts from it.

    boost/rollouts.jsonl   one single-turn record per problem: the question, the reference as
                           the action (judged by the task, like collection's reference candidates)
    boost/train/           `rise train` on it in `classic` mode (single-turn SFT, weight 1)

Standard library only (the training itself is `rise.train`'s).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rise.episodes import EpisodeConfig
from rise.errors import InputError


@dataclass
class BoostConfig:
    problems: int = 0       # training problems whose reference solutions the base is fine-tuned on (0: no boost)
    epochs: float = 2.0     # epochs of boost training (the rest of the training config is `train`'s)

    def __post_init__(self):
        if self.problems < 0:
            raise InputError(f"boost.problems must be >= 0, got {self.problems}")
        if not self.epochs > 0:
            raise InputError(f"boost.epochs must be > 0, got {self.epochs}")


@dataclass
class BoostDataConfig:
    """What boost/data/rollouts.jsonl is made from (saved beside it; the stage's key)."""

    task: str = "arith"
    task_options: dict[str, Any] = field(default_factory=dict)
    split: str = "train"
    data_path: str | None = None
    after: int | None = None        # collection's problems, skipped (collect.limit)
    problems: int = 0
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)


def run_boost_data(cfg: BoostDataConfig, out_dir) -> dict[str, Any]:
    """The `boost.data` stage: boost/data/{rollouts.jsonl, summary.json, config.yaml}."""
    from rise.config import save_config
    from rise.records import write_json
    from rise.tasks import get_task

    out = Path(out_dir)
    task = get_task(cfg.task, **cfg.task_options)
    problems = boost_problems(task, cfg.split, cfg.data_path, cfg.after, cfg.problems)
    summary = write_boost_data(task, problems, cfg.episode, out / "rollouts.jsonl")
    write_json(out / "summary.json", summary)
    save_config(out / "config.yaml", cfg)
    return summary


def boost_problems(task, split: str, path: str | None, collect_limit: int | None, n: int) -> list:
    """The N training problems after the first `collect_limit` (collection's): disjoint from the
    problems RISE rolls out on. A one-line InputError when there are fewer, or one has no
    reference solution."""
    if collect_limit is None:
        raise InputError("boost.problems needs collect.limit: the boost problems are the ones after collection's")
    problems = task.load(split, path=path, limit=collect_limit + n)[collect_limit:]
    if len(problems) < n:
        where = path or f"the task's {split!r} split"
        raise InputError(f"boost.problems={n}: {where} has {len(problems)} problems after collection's "
                         f"{collect_limit}")
    for p in problems:
        if not p.solution:
            raise InputError(f"problem {p.id}: the boost step needs a reference solution")
    return problems


def boost_records(task, problems: list, episode) -> list[dict]:
    """One rollout record per problem: turn 1's state (the question alone, in `episode`'s format)
    with the reference solution as its action, graded by the task as collection grades its
    reference candidates (a reference the task's own grader rejects is kept with reward 0, so
    classic conversion leaves it out)."""
    from rise.collect import graded

    out = []
    for p in problems:
        action = graded(task, p, [p.solution], "reference")[0]
        out.append({"problem_id": p.id, "rollout": 0, "turn": 1, "gold": p.answer,
                    "messages": episode.render(p.question, []), "candidates": [action],
                    "action": action, "next": action, "done": True})
    return out


def write_boost_data(task, problems: list, episode, out_path) -> dict[str, Any]:
    """boost/rollouts.jsonl (atomically) and a summary of how many references the grader accepts."""
    from rise.records import write_jsonl

    records = boost_records(task, problems, episode)
    write_jsonl(out_path, records)
    right = sum(r["action"]["reward"] == 1.0 for r in records)
    if not right:
        raise InputError(f"boost: the task's grader accepts none of the {len(records)} reference solutions")
    return {"problems": len(records), "references_accepted": right}
