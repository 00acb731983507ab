"""Peer test tables: verdicts that rise's graders must agree with, transcribed from other
projects' own test files (each .jsonl names its source repository, commit, files and license in
its first line; each row names its source test).

Row: {"source", "kind", "gold", "response", "expected", optional "debatable"}. `kind` is
"plain" (an answer form alone), "prose" (an answer inside words), "gsm8k" (a GSM8K output) or
"minerva" (a Minerva-format MATH output); `expected` is 1 (correct) or 0 (wrong). A row whose
peer verdict is a convention rise knowingly differs on says why in "debatable"; those rows are
reported but do not count toward the thresholds.

`grade_row` grades a row the way rise grades a rollout: the gold as a dataset would give it
(`gold_of`), the response through the task's own extraction (`Task.judge`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from rise.tasks import Problem, get_task
from rise.tasks.answers import answer_column_number
from rise.tasks.statements import math_answer, math_segments

TABLES = Path(__file__).resolve().parent
KINDS = ("plain", "prose", "gsm8k", "minerva")
_WORD_RE = re.compile(r"(?<!\\)\b[A-Za-z]{3,}\b")


def load_tables() -> dict[str, list[dict]]:
    """Every table's rows, by file stem (the header line is dropped)."""
    out = {}
    for path in sorted(TABLES.glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        out[path.stem] = [json.loads(line) for line in lines[1:] if line.strip()]
    return out


def gold_of(gold: str) -> str | None:
    """The gold a dataset column would give for a peer's gold string: its box, the math of a
    string that is one math segment, the final answer of a worked solution, else the string."""
    s = gold.strip()
    if "\\boxed" in s or "\\fbox" in s or (len(math_segments(s)) == 1 and not _prose(s)):
        from rise.tasks.math_task import MathTask
        return MathTask.gold_from_answer(s)
    if _prose(s):
        return math_answer(s).answer
    return s


def _prose(s: str) -> bool:
    outside = "".join(part for i, part in enumerate(re.split(r"\$+", s)) if i % 2 == 0)
    return len(_WORD_RE.findall(outside)) >= 4


_TASKS: dict[str, object] = {}


def task_for(kind: str):
    name = "gsm8k" if kind == "gsm8k" else "math"
    if name not in _TASKS:
        _TASKS[name] = get_task(name)
    return _TASKS[name]


def grade_row(row: dict):
    """rise's Grade of one row's response against its gold."""
    task = task_for(row["kind"])
    if row["kind"] == "gsm8k":
        gold = answer_column_number(row["gold"])
    else:
        gold = gold_of(row["gold"])
    problem = Problem(id="peer", question="", solution="", answer=gold if gold is not None else "")
    return task.judge(row["response"], problem)


def verdict(row: dict) -> int:
    return int(grade_row(row).reward == 1.0)
