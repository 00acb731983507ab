"""GSM8K: grade-school word problems with a numeric final answer. Standard library only.

Rewards as in the paper: 1 correct, 0 wrong, -1 when the response states no final answer. Unlike
the official code, a boxed answer need not be a bare int: `\\boxed{18.0}`, `\\boxed{\\$18}`,
`\\boxed{1,000}`, `\\boxed{1/2}`, `2 1/2`, `3:00`, `5e3` are numbers (exact rationals; a
non-decimal one such as 10/3 is kept as "10/3", a wrong answer, not "no answer"). Which marker
wins (the last of box, `####` line and final-answer statement) is in `rise.tasks.answers`.

Default data: `openai/gsm8k` (config `main`, splits `train` / `test`) from the Hugging Face Hub,
columns `question` and `answer` (the worked solution ending in `#### N`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .answers import answer_column_number, final_number, gsm8k_answer
from .base import Problem, Task
from .loaders import Columns, HubSource, load_problems


class GSM8KTask(Task):
    """GSM8K-style numeric task; `arith` reuses it with its own data."""

    name = "gsm8k"
    unparseable_reward = -1.0

    def __init__(self, *, question_field: str = "question", solution_field: str | None = "answer",
                 answer_field: str | None = None, id_field: str | None = None,
                 hub_id: str = "openai/gsm8k", hub_config: str | None = "main"):
        self.columns = Columns(question=question_field, solution=solution_field,
                               answer=answer_field, id=id_field)
        self.hub = HubSource(hub_id, (hub_config,)) if hub_id else None

    def load(self, split: str, path: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        """Problems of `split` from `path` (JSONL, parquet or saved dataset) or the Hub."""
        return load_problems(task=self.name, split=split, path=path, hub=self.hub,
                             columns=self.columns, limit=limit,
                             gold_from_solution=self.gold_from_solution,
                             gold_from_answer=answer_column_number)

    def gold_from_solution(self, solution: str) -> str | None:
        """The gold of a reference solution: read exactly like a response (`#### N` in GSM8K)."""
        return final_number(solution)

    def extract(self, text: str):
        return gsm8k_answer(text)

    def normalize(self, answer: Any) -> str:
        """Canonical number ("18.00", "$18", "1,000" -> "18", "18", "1000"); other text trimmed."""
        if answer is None:
            return ""
        s = str(answer).strip()
        num = answer_column_number(s)
        return num if num is not None else s

    def is_equivalent(self, predicted: Any, gold: Any) -> bool:
        """Same canonical number. No answer (None or empty) is never correct, whatever the gold."""
        if predicted is None or gold is None:
            return False
        p, g = self.normalize(predicted), self.normalize(gold)
        return bool(p) and p == g

