"""`arith`: a synthetic, GSM8K-shaped task generated in code, so the whole pipeline runs offline.

Problems are short multi-step word problems (2-4 steps of + - * and exact /, every intermediate
value in [0, max_value]) with a worked solution in GSM8K style ending in `#### N`:

    Tom has 23 apples. He buys 4 bags with 12 apples in each. How many apples does Tom have now?
    Tom buys 4 * 12 = <<4*12=48>>48 apples.
    Tom now has 23 + 48 = <<23+48=71>>71 apples.
    #### 71

Sixteen templates (`arith_templates.TEMPLATES`) vary the story, names and objects. Grading is
GSM8K's (1 / 0 / -1).

Splits: each split draws from its own random stream (seeded by `seed` and the split name), and a
question belongs to exactly one split, chosen by its content hash (`problem_hash`): test 10%,
validation 10%, train 80% of the hash space. So test never overlaps train, whatever the sizes
loaded, and `load(split, limit=n)` is always a prefix of the full split. Within a split,
questions are distinct.

Difficulty knobs (options of `get_task("arith", ...)`): `min_steps` (2), `max_steps` (4),
`max_value` (999: bound on every number and intermediate), `max_factor` (12: bound on the small
factor of a product, the divisor of a division, and counts of groups), `ops` ("+-*/"),
`templates` (all). Multiplying a 2-digit number by up to 12 and adding 3-digit numbers with
carries is what makes it hard for a tiny model.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from .arith_templates import TEMPLATES, Builder, Reject, calc_text
from .base import Problem, TaskError, problem_hash
from .gsm8k import GSM8KTask

SPLITS = ("train", "validation", "test")
_BUCKETS = 20                                    # hash buckets: 0-1 test, 2-3 validation, rest train
_CALC_RE = re.compile(r"(\d+) ([-+*/]) (\d+) = <<\d+[-+*/]\d+=\d+>>(\d+)")
_FINAL_RE = re.compile(r"####\s*(\S+)\s*$")


def split_of(question: str) -> str:
    """The split that owns a question, from its content hash."""
    bucket = int(problem_hash(question), 16) % _BUCKETS
    return "test" if bucket < 2 else "validation" if bucket < 4 else "train"


def run_program(program: list[list], override: dict[int, int] | None = None) -> list[int] | None:
    """Results of each step; `override` forces some results (a slip). None if a later step
    becomes impossible (negative or inexact division)."""
    values: list[int] = []
    for j, (a, op, b) in enumerate(program):
        av, bv = (values[int(x[1:])] if isinstance(x, str) else int(x) for x in (a, b))
        if override and j in override:
            values.append(override[j])
            continue
        if op == "/":
            if bv == 0 or av % bv:
                return None
            r = av // bv
        else:
            r = av + bv if op == "+" else av - bv if op == "-" else av * bv
        if r < 0:
            return None
        values.append(r)
    return values


def _operands(program: list[list], values: list[int], j: int) -> tuple[int, int]:
    a, _, b = program[j]
    return tuple(values[int(x[1:])] if isinstance(x, str) else int(x) for x in (a, b))


def _slips(r: int) -> list[int]:
    """Plausible wrong results for a true result r: off by one or two, a lost or extra carry,
    two adjacent digits swapped."""
    out = {r + d for d in (1, -1, 2, -2, 10, -10)}
    if r >= 100:
        out |= {r + 100, r - 100}
    s = str(r)
    for i in range(len(s) - 1):
        if s[i] != s[i + 1] and not (i == 0 and s[i + 1] == "0"):
            out.add(int(s[:i] + s[i + 1] + s[i] + s[i + 2:]))
    return sorted(v for v in out if v >= 0 and v != r)


class ArithTask(GSM8KTask):
    name = "arith"
    unparseable_reward = -1.0

    def __init__(self, *, seed: int = 0, min_steps: int = 2, max_steps: int = 4,
                 max_value: int = 999, max_factor: int = 12, ops: str = "+-*/",
                 templates: list[str] | tuple[str, ...] | None = None,
                 train_size: int = 20000, validation_size: int = 500, test_size: int = 500,
                 question_field: str = "question", solution_field: str | None = "solution",
                 answer_field: str | None = None, id_field: str | None = None):
        super().__init__(question_field=question_field, solution_field=solution_field,
                         answer_field=answer_field, id_field=id_field, hub_id="")
        self.seed = int(seed)
        self.min_steps, self.max_steps = int(min_steps), int(max_steps)
        self.max_value, self.max_factor = int(max_value), int(max_factor)
        self.ops = str(ops)
        self.templates = tuple(templates) if templates else tuple(TEMPLATES)
        self.sizes = {"train": int(train_size), "validation": int(validation_size),
                      "test": int(test_size)}
        self._check_knobs()

    def _check_knobs(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise TaskError(f"arith: need 1 <= min_steps <= max_steps, got "
                            f"{self.min_steps}, {self.max_steps}")
        if self.max_value < 20 or self.max_factor < 2:
            raise TaskError("arith: need max_value >= 20 and max_factor >= 2")
        if not self.ops or set(self.ops) - set("+-*/"):
            raise TaskError(f"arith: ops must be a non-empty subset of '+-*/', got {self.ops!r}")
        unknown = sorted(set(self.templates) - set(TEMPLATES))
        if unknown:
            raise TaskError(f"arith: unknown templates {unknown}; known: {', '.join(TEMPLATES)}")

    # -- data ------------------------------------------------------------------------------------
    def load(self, split: str, path: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        """Generated problems of `split` (train/validation/test); `limit` = how many (defaults
        train 20000, validation 500, test 500). With `path`, read a file like GSM8K does."""
        if path is not None:
            return super().load(split, path=path, limit=limit)
        if split not in SPLITS:
            raise TaskError(f"arith: unknown split {split!r}; splits: {', '.join(SPLITS)}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise TaskError(f"limit must be a non-negative integer or None, got {limit!r}")
        return self.generate(split, self.sizes[split] if limit is None else limit)

    def generate(self, split: str, n: int) -> list[Problem]:
        """The first `n` distinct problems of `split` for this seed and these knobs."""
        rng = random.Random(f"rise-arith:{self.seed}:{split}")
        seen: set[str] = set()
        problems: list[Problem] = []
        attempts, max_attempts = 0, 200 * n + 10_000
        while len(problems) < n:
            attempts += 1
            if attempts > max_attempts:
                raise TaskError(f"arith: only {len(problems)} distinct {split} problems after "
                                f"{max_attempts} draws; loosen the difficulty knobs")
            drawn = self._draw(rng)
            if drawn is None:
                continue
            template, question, builder = drawn
            h = problem_hash(question)
            if h in seen or split_of(question) != split:
                continue
            seen.add(h)
            answer = int(run_program(builder.program)[-1])
            problems.append(Problem(
                id=f"arith-{split}-{len(problems):05d}", question=question,
                solution="\n".join(builder.lines) + f"\n#### {answer}", answer=str(answer),
                meta={"hash": h, "template": template, "steps": len(builder.program),
                      "program": builder.program}))
        return problems

    def _draw(self, rng: random.Random) -> tuple[str, str, Builder] | None:
        name = rng.choice(self.templates)
        builder = Builder(rng, self.max_value, self.max_factor, self.ops)
        try:
            question = TEMPLATES[name](builder)
        except Reject:
            return None
        if not self.min_steps <= len(builder.program) <= self.max_steps:
            return None
        return name, question, builder

    # -- flawed solutions ------------------------------------------------------------------------
    def corrupt_solution(self, problem: Problem, rng: random.Random) -> str:
        """The problem's worked solution with one arithmetic slip (a step's result off by one,
        a carry, or swapped digits), carried through every later step to a wrong final answer.
        Only generated problems (which keep `meta['program']`) can be corrupted."""
        program: Any = problem.meta.get("program")
        calcs = list(_CALC_RE.finditer(problem.solution))
        if not program or len(calcs) != len(program):
            raise TaskError(f"problem {problem.id}: no step program matching its solution; "
                            "only generated arith problems can be corrupted")
        values = run_program(program)
        chosen = None
        for _ in range(50):
            i = rng.randrange(len(program))
            slips = _slips(values[i])
            new = run_program(program, {i: rng.choice(slips)}) if slips else None
            if new is not None and new[-1] != values[-1]:
                chosen = new
                break
        if chosen is None:          # a slip in the last step always works
            chosen = values[:-1] + [values[-1] + 1]
        return self._render(problem.solution, program, calcs, chosen)

    @staticmethod
    def _render(solution: str, program: list[list], calcs: list[re.Match],
                values: list[int]) -> str:
        pieces, pos = [], 0
        for j, m in enumerate(calcs):
            a, b = _operands(program, values, j)
            pieces += [solution[pos:m.start()], calc_text(a, program[j][1], b, values[j])]
            pos = m.end()
        pieces.append(solution[pos:])
        text = "".join(pieces)
        return _FINAL_RE.sub(f"#### {values[-1]}", text.rstrip()) + "\n" * text.endswith("\n")
