"""The problem record and the task interface. Standard library only.

A task knows how to load problems, pull an answer out of a response, and grade it. Rewards are
pure functions of (response, problem), as in the paper: GSM8K-style tasks give +1 / 0 / -1 (no
parseable answer), MATH gives 1 / 0.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from rise.errors import InputError


class TaskError(InputError):
    """Bad task input: an unknown task, an unparseable gold answer, a missing column. The message
    names the culprit (task, file, line or problem id)."""


@dataclass(frozen=True)
class Problem:
    id: str                 # stable id: the dataset's own, or a hash of the question
    question: str
    solution: str           # reference worked solution ("" when the dataset has none)
    answer: str             # gold final answer, already extracted (GSM8K/arith: canonical number)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def problem_hash(question: str) -> str:
    """Content hash of a question (whitespace-insensitive); used for ids and split-overlap checks."""
    norm = " ".join(question.split())
    return hashlib.sha1(norm.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Grade:
    """One graded response: the extracted answer (None: no answer), its reward, and the extraction
    step that read it ("boxed", "hash", "final_answer", "last_math", "last_number"; None when
    nothing was read), so an episode record shows why an answer was read."""
    answer: str | None
    reward: float
    extracted_by: str | None = None


class Task:
    """Base class. Subclasses set `name`, `unparseable_reward` and implement the three hooks."""

    name: str = "task"
    unparseable_reward: float = 0.0

    # -- hooks -------------------------------------------------------------------------------
    def load(self, split: str, path: str | None = None, limit: int | None = None) -> list[Problem]:
        raise NotImplementedError

    def extract(self, text: str):
        """The final answer in `text` and the step that read it (`rise.tasks.answers.Extraction`).
        GSM8K-style tasks give the canonical number; MATH the LaTeX as written, trimmed."""
        raise NotImplementedError

    def extract_answer(self, text: str) -> str | None:
        """The final answer in `text`, or None when there is none."""
        return self.extract(text).answer

    def is_equivalent(self, predicted: str, gold: str) -> bool:
        """Whether two extracted answers are the same answer."""
        return self.normalize(predicted) == self.normalize(gold)

    def normalize(self, answer: str) -> str:
        """Canonical string of an extracted answer; majority votes group by it."""
        return answer.strip()

    @property
    def grader_stats(self) -> dict[str, int]:
        """Counters a report can show (MATH: fast-path hits, math-verify calls, timeouts...)."""
        return {}

    # -- derived -----------------------------------------------------------------------------
    def judge(self, response: str, problem: Problem) -> Grade:
        """The full grade of one response: answer, reward and the extraction step."""
        found = self.extract(response)
        if found.answer is None:
            return Grade(None, self.unparseable_reward, found.step)
        correct = self.is_equivalent(found.answer, problem.answer)
        return Grade(found.answer, 1.0 if correct else 0.0, found.step)

    def grade(self, response: str, problem: Problem) -> tuple[str | None, float]:
        """(extracted answer, reward) of one response."""
        g = self.judge(response, problem)
        return g.answer, g.reward

    def reward(self, response: str, problem: Problem) -> float:
        return self.grade(response, problem)[1]
