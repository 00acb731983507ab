"""Out-of-distribution evaluation (the paper's Table 3): the models of an evaluation, evaluated
again on other tasks (`eval.tasks`), each an ordinary evaluation of its own in `<eval>/ood/<name>/`,
and the main report's "Out of distribution" section gathered from them.

Each entry's evaluation is the main one with the task, its options and its data replaced (same
rows, turns, samples, sampling, episode format), so the rows of the section compare with the rows
of the main table. Standard library only (evaluation itself is imported lazily).
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rise.errors import InputError


@dataclass
class EvalTask:
    """One extra evaluation task of eval.tasks."""

    task: str = ""                      # rise.tasks name: arith | gsm8k | math | rg:<name>
    task_options: dict[str, Any] | None = None  # options of rise.tasks.get_task (None: the task's defaults)
    split: str = "test"                 # split its problems come from
    data_path: str | None = None        # local JSONL/parquet/datasets dir instead of the task's own data
    limit: int | None = None            # problems evaluated (None: as many as eval.limit)
    name: str | None = None             # its name in the report and its folder ood/<name> (None: from the task)

    def __post_init__(self):
        if not self.task:  # the empty default only exists so that the config loader can fill it in
            return
        from rise.tasks import task_options

        try:
            allowed = task_options(self.task)
        except InputError as e:
            raise InputError(f"task: {e}") from None
        unknown = sorted(set(self.task_options or {}) - set(allowed))
        if unknown:
            raise InputError(f"task_options: unknown option(s) {', '.join(unknown)} of task {self.task!r}; "
                             f"options: {', '.join(allowed)}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit must be >= 1, got {self.limit}")
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:+-]*", self.name):
            raise InputError(f"name {self.name!r}: letters, digits and _ . : + - only (it names a folder)")

    @property
    def label(self) -> str:
        """The entry's name in the report, and (':' made '_') its folder."""
        return self.name or self.task.strip()


def folder_name(label: str) -> str:
    return label.replace(":", "_")


def check_entries(tasks: list[EvalTask]) -> None:
    """Every entry names a task, and no two share a name (their folders would collide)."""
    seen: dict[str, int] = {}
    for i, t in enumerate(tasks):
        if not t.task:
            raise InputError(f"tasks[{i}]: no task given (e.g. {{task: gsm8k, data_path: FILE}})")
        key = folder_name(t.label)
        if key in seen:
            raise InputError(f"tasks[{i}]: the name {t.label!r} is taken by tasks[{seen[key]}]; "
                             "give one of them a name")
        seen[key] = i


def entry_config(main, entry: EvalTask, options: dict[str, Any] | None = None):
    """The EvalConfig of one entry: `main` (an EvalConfig) on the entry's task and data.
    `options`: the task options to use when the entry gives none (default: the task's own)."""
    ev = copy.deepcopy(main)
    ev.tasks = []
    ev.task = entry.task.strip()
    given = entry.task_options if entry.task_options is not None else options
    ev.task_options = dict(given or {})
    ev.split, ev.data_path = entry.split, entry.data_path
    ev.limit = entry.limit if entry.limit is not None else main.limit
    return ev


def entry_configs(main, tasks: list[EvalTask], options_of=None) -> dict[str, Any]:
    """{label: EvalConfig} of every entry of `tasks`, in order, derived from the EvalConfig `main`.
    `options_of(task)`: the options of an entry that gives none (rise run's defaults for arith)."""
    return {t.label: entry_config(main, t, options_of(t.task) if options_of else None) for t in tasks}


def preflight(main, tasks: list[EvalTask], options_of=None) -> None:
    """Load every entry's problems (an unknown task, a missing file, a bad option) before any model
    loads, raising one line naming the entry."""
    from rise.config import ConfigError
    from rise.tasks import get_task

    for i, (label, ev) in enumerate(entry_configs(main, tasks, options_of).items()):
        try:
            get_task(ev.task, **ev.task_options).load(ev.split, path=ev.data_path, limit=ev.limit)
        except InputError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"eval.tasks[{i}] ({label}): {first}") from None


def entry_dir(eval_dir: str | Path, label: str) -> Path:
    return Path(eval_dir) / "ood" / folder_name(label)


def gather(eval_dir: str | Path, configs: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """{row: {label: metrics}} from the entries' own report.json files: every row of each entry's
    evaluation, its metrics with a meta saying which task and data they were measured on."""
    out: dict[str, dict[str, dict]] = {}
    for label, ev in configs.items():
        report = json.loads((entry_dir(eval_dir, label) / "report.json").read_text())
        for row, metrics in sorted(report.items(), key=lambda kv: kv[1]["meta"]["order"]):
            entry = {k: v for k, v in metrics.items() if k not in ("meta", "analyses")}
            entry["meta"] = {"task": ev.task, "task_options": ev.task_options, "split": ev.split,
                             "data_path": ev.data_path, "folder": f"ood/{folder_name(label)}"}
            out.setdefault(row, {})[label] = entry
    return out

