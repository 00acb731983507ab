"""MATH: competition problems whose answer is the LaTeX in the last `\\boxed{}`. Rewards 1 / 0
(no answer scores 0, as in the paper). Standard library only; math-verify runs in a worker process.
A response that does not box its answer is read by a final-answer statement, else its last math
or number (order in `rise.tasks.statements`).

Equivalence, cheapest first:
  1. no answer, or an empty one, is never correct (the official `is_equiv(None, None)` was True);
  2. answers longer than `max_answer_chars` (1000) are wrong without calling sympy;
  3. fast path: equal after `normalize_math` (spaces, \\left/\\right, \\dfrac, units, x=, ...);
  4. numbers in a base (`3032_5`) only compare as strings (math-verify drops the subscript);
  5. answers too costly for sympy (braces nested deeper than 8, a literal power of more than
     100,000 digits, the factorial of a 6+ digit number) are wrong without calling it;
  6. math-verify in the worker process (LaTeX shorthand repaired first, `repair_latex`), at most
     `verify_timeout` seconds; a timeout is wrong. A gold whose parse cannot be trusted (unparsed,
     or disagreeing with its string) is only ever matched by step 3, never by math-verify:
     counted as `gold_unparsed` / `gold_suspect`;
  7. an answer that is one equation `lhs = value` (`a+k=-4`) against a gold that is no equation
     is compared once more by its right side (steps 3-6), as math-verify reads `x = 5`.
Comma lists are sets (`1, 2` = `2, 1`), bracketed ones tuples or intervals (math-verify's reading);
`32, 349` (comma and space) is a list, `32,349` a number.
Counters of each outcome are in `task.grader_stats`.

Default data: split `test` -> `HuggingFaceH4/MATH-500` (the standard 500-problem subset; it has
`unique_id` ids); any other split -> `EleutherAI/hendrycks_math`, the seven subject configs
concatenated. Pass `hub_id`/`hub_config` to choose, or `path=` a local file.
"""
from __future__ import annotations

import re
import time
from fractions import Fraction
from math import gcd
from pathlib import Path
from typing import Any

from . import verifier as _verifier
from .answers import (
    NUMBER_RE,
    balanced_group,
    boxed_chain,
    canonical_number,
    canonical_rational,
)
from .base import Grade, Problem, Task
from .loaders import Columns, HubSource, load_problems
from .statements import _top_level_split, math_answer, math_segments, segment_content

MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")
_HUGE_FACTORIAL_RE = re.compile(r"\d{6,}\s*\}?\s*\)?\s*!")
_POWER_RE = re.compile(r"(\d+)\s*\}?\s*\^\s*\{?\s*\+?(\d+)")
MAX_BRACE_DEPTH = 8             # sympy's LaTeX parser is exponential in nesting; real answers < 5
MAX_POWER_DIGITS = 100_000      # a literal power with more digits than this is not an answer
_VAR_EQ_RE = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?=(.+)")
# a unit written after a number: "108~\text{in}^2", "5\,\mathrm{cm}" (a lone "\text{Tuesday}" stays)
_UNIT_RE = re.compile(r"(?<=[\d}])\s*(?:~|\\[,;: ]|\\quad)*\s*\\(?:text|mbox|mathrm)\s*\{\s*"
                      r"[A-Za-z][A-Za-z .]{0,20}\}(?:\s*\^\s*\{?[23]\}?)?\s*$")
_SCI_RE = re.compile(r"(?P<snum>-?\d{1,30}(?:\.\d{1,30})?)(?:[eE](?P<sexp>[-+]?\d{1,3})|"
                     r"\\(?:times|cdot)10\^\{?(?P<texp>[-+]?\d{1,3})\}?)")
_LIST_COMMA_RE = re.compile(r"\d,\s+\d")
_TEXT_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\{([^{}]*)\}")


def _latex_arg(s: str, i: int) -> tuple[str, int] | None:
    """One argument of a LaTeX command at `s[i:]` (spaces skipped): a `{...}` group, a command
    such as `\\pi`, or one character. Returns (argument without braces, index after it)."""
    n = len(s)
    while i < n and s[i] == " ":
        i += 1
    if i >= n or s[i] in "}^_$&":
        return None
    if s[i] == "{":
        group = balanced_group(s, i)
        return group if group else None
    if s[i] == "\\":
        m = re.match(r"\\[A-Za-z]+", s[i:])
        return (m.group(0), i + m.end()) if m else None
    return s[i], i + 1


def repair_latex(s: str) -> str:
    """Brace the shorthand arguments that math-verify misreads: `\\frac \\pi4` -> `\\frac{\\pi}{4}`,
    `\\frac12` -> `\\frac{1}{2}`, `\\sqrt2` -> `\\sqrt{2}`, and write a repeating decimal
    `0.\\overline{3}` as the fraction it is (`\\frac{1}{3}`), and write groups of a list joined by
    a worded "and" as the groups they are (`p = 5, q = 2 \\quad \\text{and} \\quad p = 7, q = 2`
    -> `p = 5, q = 2; p = 7, q = 2`: two solutions, not four values). Other text is left as it
    is."""
    if "\\" not in s:
        return s
    s = _OVERLINE_RE.sub(_overline_fraction, s)
    if _GROUP_AND_RE.search(s):
        parts = _GROUP_AND_RE.split(s)
        if all("," in part for part in parts):
            s = "; ".join(part.strip() for part in parts)
    out, i = [], 0
    for m in _SHORTHAND_RE.finditer(s):
        if m.start() < i:
            continue
        args, j = [], m.end()
        for _ in range(2 if m.group(1) != "sqrt" else 1):
            if m.group(1) == "sqrt" and s[j:j + 1] in ("[", "{"):
                break
            arg = _latex_arg(s, j)
            if arg is None:
                break
            args.append(arg[0])
            j = arg[1]
        if len(args) != (1 if m.group(1) == "sqrt" else 2):
            continue
        out.append(s[i:m.start()] + "\\" + m.group(1) + "".join("{" + a + "}" for a in args))
        i = j
    out.append(s[i:])
    return "".join(out)


_GROUP_AND_RE = re.compile(r"\s*(?:\\q?quad\s*)?\\text\s*\{\s*and\s*\}(?:\s*\\q?quad)?\s*")
_SHORTHAND_RE = re.compile(r"\\([dtc]?frac|sqrt)(?![A-Za-z])")
_OVERLINE_RE = re.compile(r"(-?)(\d*)\.(\d*)\\overline\s*\{?\s*(\d{1,12})\s*\}?")


def _overline_fraction(m: re.Match) -> str:
    """`a.b\\overline{c}` as `\\frac{p}{q}`: a.b(ccc...) = (abc - ab) / (10^|b| (10^|c| - 1))."""
    whole, fixed, rep = m.group(2) or "0", m.group(3), m.group(4)
    num = int(whole + fixed + rep) - int(whole + fixed)
    den = 10 ** len(fixed) * (10 ** len(rep) - 1)
    g = gcd(num, den)
    return f"{m.group(1)}\\frac{{{num // g}}}{{{den // g}}}"


_BASE_RE = re.compile(r"[0-9A-Za-z]+_\{?\s*(?:\\text\{\s*)?(\d{1,2})\s*\}?\}?")


def has_base_subscript(s: str) -> bool:
    """Whether `s` is a number written in a base (`3032_5`, `101_{2}`, `AB_{16}`): math-verify
    reads the subscript as an index and drops it, so such answers compare as strings only."""
    return bool(_BASE_RE.fullmatch(s.replace(" ", "")))


def normalize_math(answer: Any) -> str:
    """Canonical string of a MATH answer, used as the vote key and the exact-match fast path.

    In the spirit of the MATH reference `strip_string`, but conservative: it only removes notation
    that never changes the value (spacing, \\left/\\right, \\dfrac, degrees, dollar and percent
    signs, trailing text units, a leading `x =`, thousands commas, trailing zeros)."""
    if answer is None:
        return ""
    s = str(answer).strip()
    s = repair_latex(s)
    s = re.sub(r"\\(?:left|right)\s*\.", "", s)
    s = re.sub(r"\\(?:left|right|displaystyle)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\degree(?![A-Za-z])", "", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\\(?:text|mbox)\{\s[^{}]*\}\s*$", "", s)      # "5\text{ cm}" -> "5"
    s = _UNIT_RE.sub("", s)                                     # "108~\text{in}^2" -> "108"
    s = _TEXT_RE.sub(r"\1", s)
    for space in ("\\!", "\\,", "\\;", "\\:", "\\ ", "~"):
        s = s.replace(space, "")
    listed = bool(_LIST_COMMA_RE.search(s))       # "32, 349" is two numbers, "32,349" one
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"_\{(\w+)\}", r"_\1", s)
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
    if NUMBER_RE.fullmatch(s) and not listed:
        s = canonical_number(s) or s
    sci = _SCI_RE.fullmatch(s)
    if sci:                                                     # "1e-3", "2.5\times10^{4}"
        exponent = int(sci.group("sexp") or sci.group("texp"))
        s = canonical_rational(Fraction(sci.group("snum")) * Fraction(10) ** exponent)
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
                                     "verify_equal", "timeouts", "base_strings",
                                     "gold_unparsed", "gold_suspect", "right_side"), 0)

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
                             gold_from_solution=self.gold_from_solution,
                             gold_from_answer=self.gold_from_answer)

    @staticmethod
    def gold_from_solution(solution: str) -> str | None:
        """The gold of a reference solution: its last box, with the boxes of the same sentence
        (`$\\boxed{1}$ and $\\boxed{-2}$`, the rows of an `align`) as one answer "1, -2"."""
        return boxed_chain(solution, sentence=True).answer

    @staticmethod
    def gold_from_answer(value: Any) -> str | None:
        """An answer column: the boxed content if it holds a box, the math inside `$...$` if the
        whole value is one math segment, else the text itself."""
        if value is None or isinstance(value, bool):
            return None
        s = str(value).strip()
        if "\\boxed" in s or "\\fbox" in s:
            return boxed_chain(s, sentence=True).answer
        segs = math_segments(s)
        if len(segs) == 1 and segs[0].start() == 0 and segs[0].end() == len(s):
            s = segment_content(segs[0])
        return s or None

    # -- grading ---------------------------------------------------------------------------------
    def extract(self, text: str):
        """The answer and its step: the last box, else a final-answer statement, else the last
        math or number (`rise.tasks.statements.math_answer`)."""
        return math_answer(text)

    def normalize(self, answer: Any) -> str:
        return normalize_math(answer)

    def judge(self, response: str, problem: Problem) -> Grade:
        self._stats["graded"] += 1
        g = super().judge(response, problem)
        self._stats["unparseable"] += g.answer is None
        return g

    def is_equivalent(self, predicted: Any, gold: Any) -> bool:
        """Whether `predicted` is `gold` (steps in the module doc). An answer written as one
        equation `lhs = value` against a gold that is no equation is also compared by its right
        side ("a+k=-4" states -4), as math-verify does for `x = 5`."""
        self._stats["comparisons"] += 1
        if predicted is None or gold is None or not str(predicted).strip() \
                or not str(gold).strip():
            self._stats["no_answer"] += 1
            return False
        pred, gold = str(predicted), str(gold)
        deadline = time.monotonic() + self.verify_timeout      # one time bound per call
        if self._compare(pred, gold, self.verify_timeout):
            return True
        sides = _top_level_split(pred)
        left = deadline - time.monotonic()
        if len(sides) == 2 and sides[1].strip() and "=" not in gold and left > 0:
            self._stats["right_side"] += 1
            return self._compare(sides[1].strip(), gold, left)
        return False

    def _compare(self, pred: str, gold: str, timeout: float) -> bool:
        if len(pred) > self.max_answer_chars or len(gold) > self.max_answer_chars:
            self._stats["too_long"] += 1
            return False
        if normalize_math(pred) == normalize_math(gold):
            self._stats["fast_path"] += 1
            return True
        if not self.use_math_verify:
            return False
        if has_base_subscript(pred) or has_base_subscript(gold):
            self._stats["base_strings"] += 1      # `3032_5` is not `3032_6`: strings only
            return False
        if too_complex(pred) or too_complex(gold):
            self._stats["too_complex"] += 1
            return False
        self._stats["verify_calls"] += 1
        verdict, gold_status = _verifier.shared_worker().check(
            repair_latex(gold), repair_latex(pred), timeout)
        if gold_status in ("unparsed", "suspect"):
            self._stats["gold_" + gold_status] += 1
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
