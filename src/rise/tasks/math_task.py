"""MATH: competition problems whose answer is the LaTeX in the last `\\boxed{}`. Rewards 1 / 0
(no answer scores 0, as in the paper). Standard library only; math-verify runs in a worker process.

Equivalence, cheapest first:
  1. no answer, or an empty one, is never correct (the official `is_equiv(None, None)` was True);
  2. answers longer than `max_answer_chars` (1000) are wrong without calling sympy;
  3. fast path: equal after `normalize_math` (spaces, \\left/\\right, \\dfrac, units, x=, ...);
  4. answers too costly for sympy (braces nested deeper than 8, a literal power of more than
     100,000 digits, the factorial of a 6+ digit number) are wrong without calling it;
  5. math-verify in the worker process, at most `verify_timeout` seconds; a timeout is wrong.
Counters of each outcome are in `task.grader_stats`.

Default data: split `test` -> `HuggingFaceH4/MATH-500` (the standard 500-problem subset; it has
`unique_id` ids); any other split -> `EleutherAI/hendrycks_math`, the seven subject configs
concatenated. Pass `hub_id`/`hub_config` to choose, or `path=` a local file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .answers import NUMBER_RE, canonical_number, last_boxed
from .base import Problem, Task
from .loaders import Columns, HubSource, load_problems
from . import verifier as _verifier

MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")
_HUGE_FACTORIAL_RE = re.compile(r"\d{6,}\s*\}?\s*\)?\s*!")
_POWER_RE = re.compile(r"(\d+)\s*\}?\s*\^\s*\{?\s*\+?(\d+)")
MAX_BRACE_DEPTH = 8             # sympy's LaTeX parser is exponential in nesting; real answers < 5
MAX_POWER_DIGITS = 100_000      # a literal power with more digits than this is not an answer
_VAR_EQ_RE = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?=(.+)")
_TEXT_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\{([^{}]*)\}")


def normalize_math(answer: Any) -> str:
    """Canonical string of a MATH answer, used as the vote key and the exact-match fast path.

    In the spirit of the MATH reference `strip_string`, but conservative: it only removes notation
    that never changes the value (spacing, \\left/\\right, \\dfrac, degrees, dollar and percent
    signs, trailing text units, a leading `x =`, thousands commas, trailing zeros)."""
    if answer is None:
        return ""
    s = str(answer).strip()
    s = re.sub(r"\\(?:left|right)\s*\.", "", s)
    s = re.sub(r"\\(?:left|right|displaystyle)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\degree(?![A-Za-z])", "", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\\(?:text|mbox)\{\s[^{}]*\}\s*$", "", s)      # "5\text{ cm}" -> "5"
    s = _TEXT_RE.sub(r"\1", s)
    for space in ("\\!", "\\,", "\\;", "\\:", "\\ ", "~"):
        s = s.replace(space, "")
    s = re.sub(r"\s+", "", s)
    m = _VAR_EQ_RE.fullmatch(s)
    if m and "=" not in m.group(1):
        s = m.group(1)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d|[A-Za-z](?![A-Za-z]))", r"\\sqrt{\1}", s)
    s = re.sub(r"(?<![\d}])\.(\d)", r"0.\1", s)
    s = s.rstrip(".")
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    if NUMBER_RE.fullmatch(s):
        s = canonical_number(s) or s
    return s


def brace_depth(s: str) -> int:
    depth = deepest = 0
    for c in s:
        if c == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif c == "}":
            depth -= 1
    return deepest


def too_complex(answer: str) -> bool:
    """Whether comparing `answer` could stall sympy; such answers are graded wrong, unevaluated."""
    if brace_depth(answer) > MAX_BRACE_DEPTH or _HUGE_FACTORIAL_RE.search(answer):
        return True
    for m in _POWER_RE.finditer(answer):
        base, exponent = m.group(1).lstrip("0"), m.group(2).lstrip("0")
        if len(base) > 1 or base > "1":
            if len(exponent) > 12 or int(exponent or 0) * len(base) > MAX_POWER_DIGITS:
                return True
    return False


class MathTask(Task):
    name = "math"
    unparseable_reward = 0.0

    def __init__(self, *, question_field: str = "problem", solution_field: str | None = "solution",
                 answer_field: str | None = None, id_field: str | None = None,
                 hub_id: str | None = None, hub_config: str | list[str] | None = None,
                 verify_timeout: float = 5.0, max_answer_chars: int = 1000,
                 use_math_verify: bool = True):
        self.columns = Columns(question=question_field, solution=solution_field,
                               answer=answer_field, id=id_field)
        self.hub_id, self.hub_config = hub_id, hub_config
        self.verify_timeout = float(verify_timeout)
        self.max_answer_chars = int(max_answer_chars)
        self.use_math_verify = bool(use_math_verify)
        self._stats = dict.fromkeys(("graded", "unparseable", "comparisons", "no_answer",
                                     "too_long", "fast_path", "too_complex", "verify_calls",
                                     "verify_equal", "timeouts"), 0)

    # -- data ------------------------------------------------------------------------------------
    def hub_source(self, split: str) -> HubSource:
        """The default Hub dataset of `split` (see the module docstring)."""
        hub_id = self.hub_id or ("HuggingFaceH4/MATH-500" if split == "test"
                                 else "EleutherAI/hendrycks_math")
        configs = self.hub_config
        if configs is None:
            configs = MATH_SUBJECTS if hub_id == "EleutherAI/hendrycks_math" else (None,)
        elif isinstance(configs, str):
            configs = (configs,)
        return HubSource(hub_id, tuple(configs))

    def load(self, split: str, path: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        return load_problems(task=self.name, split=split, path=path,
                             hub=None if path is not None else self.hub_source(split),
                             columns=self.columns, limit=limit,
                             gold_from_solution=last_boxed, gold_from_answer=self.gold_from_answer)

    @staticmethod
    def gold_from_answer(value: Any) -> str | None:
        """An answer column: the boxed content if it holds a box, else the text itself."""
        if value is None or isinstance(value, bool):
            return None
        s = str(value).strip()
        return (last_boxed(s) if "\\boxed" in s or "\\fbox" in s else s) or None

    # -- grading ---------------------------------------------------------------------------------
    def extract_answer(self, text: str) -> str | None:
        """The content of the last `\\boxed{...}` (balanced braces), `\\boxed X` or `\\fbox{}`."""
        return last_boxed(text)

    def normalize(self, answer: Any) -> str:
        return normalize_math(answer)

    def grade(self, response: str, problem: Problem) -> tuple[str | None, float]:
        self._stats["graded"] += 1
        pred, reward = super().grade(response, problem)
        self._stats["unparseable"] += pred is None
        return pred, reward

    def is_equivalent(self, predicted: Any, gold: Any) -> bool:
        self._stats["comparisons"] += 1
        if predicted is None or gold is None or not str(predicted).strip() \
                or not str(gold).strip():
            self._stats["no_answer"] += 1
            return False
        pred, gold = str(predicted), str(gold)
        if len(pred) > self.max_answer_chars or len(gold) > self.max_answer_chars:
            self._stats["too_long"] += 1
            return False
        if normalize_math(pred) == normalize_math(gold):
            self._stats["fast_path"] += 1
            return True
        if not self.use_math_verify:
            return False
        if too_complex(pred) or too_complex(gold):
            self._stats["too_complex"] += 1
            return False
        self._stats["verify_calls"] += 1
        verdict = _verifier.shared_worker().compare(gold, pred, self.verify_timeout)
        if verdict is None:
            self._stats["timeouts"] += 1
            return False
        self._stats["verify_equal"] += int(verdict)
        return verdict

    @property
    def grader_stats(self) -> dict[str, int]:
        """Counts of each grading outcome since this task was made, plus worker start-ups."""
        stats = dict(self._stats)
        worker = _verifier._SHARED
        stats["worker_starts"] = worker.starts if worker is not None else 0
        return stats
