"""Every real gold (../shared/data GSM8K test and MATH 1000), restated the way models write it,
grades correct; mutations of the golds that are certainly different answers never do.

Restatements: "The answer is X.", "#### X", "\\boxed{X}", lm-eval's GSM8K-CoT-Llama "The final
answer is X", Minerva's "Final Answer: The final answer is $X$. I hope it is correct.", the
answer alone. Mutations: a numeric gold plus one, negated, times ten; the last integer of a
symbolic gold plus one (only where that certainly changes the value: no powers, subscripts,
factorials, functions, binomials, floors, congruences, text); the last item of a list dropped.

Restatements are all golds (fast path, about a second). Mutations of MATH go through math-verify,
so CI grades a deterministic sample of RISE_GOLD_SAMPLE (default 120, about 125 golds and 600
mutations, ~1 s) MATH golds; RISE_GOLD_SAMPLE=all grades every one (1000 golds, 5018 mutations:
~11 s CPU, ~25 s wall on a shared 2-core machine).
"""
from __future__ import annotations

import os
import re
from fractions import Fraction

import pytest

from rise.tasks import get_task
from rise.tasks.answers import canonical_rational, clean_latex_number_text
from rise.tasks.statements import prose_words

SAMPLE = os.environ.get("RISE_GOLD_SAMPLE", "120")

GSM8K_FORMS = ("The answer is {x}.", "So she has {x} left.\n#### {x}", "Thus $\\boxed{{{x}}}$.",
               "The final answer is {x}", "The answer is ${x}.",
               "Final Answer: The final answer is ${x}$. I hope it is correct.", "{x}")
MATH_FORMS = ("\\boxed{{{x}}}", "So the answer is $\\boxed{{{x}}}$.",
              "Final Answer: The final answer is ${x}$. I hope it is correct.",
              "The answer is ${x}$.", "${x}$")
_RISKY_RE = re.compile(r"[\^_!]|\\(?:log|ln|sin|cos|tan|cot|sec|csc|arc|binom|choose|lfloor|lceil"
                       r"|floor|ceil|pmod|mod|equiv|text|mbox|mathrm|operatorname|overline|max|min"
                       r"|gcd|lcm|infty)|\d\s*\\cdot\s*0|\b0\s*\\cdot")


@pytest.fixture(scope="module")
def golds(shared_data):
    return {name: get_task(name).load("test", path=shared_data / file)
            for name, file in (("gsm8k", "gsm8k_test.jsonl"), ("math", "math_test.jsonl"))}


def numeric_value(gold: str) -> Fraction | None:
    """The exact value of a gold that is one number (`18`, `-0.5`, `\\frac{3}{4}`), else None."""
    from rise.tasks.answers import _VALUE_RE, value_of
    m = _VALUE_RE.fullmatch(clean_latex_number_text(gold))
    return value_of(m) if m else None


def math_mutations(gold: str) -> list[str]:
    """Answers certainly different from `gold` (module doc)."""
    value = numeric_value(gold)
    if value is not None:
        out = [value + 1, value * 10 if value else Fraction(7), -value if value else Fraction(-1)]
        return [latex_of(v) for v in out]
    out = []
    if not _RISKY_RE.search(gold):
        ints = list(re.finditer(r"(?<![\d.])\d{1,6}(?![\d.])", gold))
        if ints:
            m = ints[-1]
            out.append(gold[:m.start()] + str(int(m.group()) + 1) + gold[m.end():])
    items = [s.strip() for s in gold.split(",")]
    if len(items) >= 2 and "(" not in gold and "[" not in gold and "\\{" not in gold \
            and len(set(items)) == len(items) and all(items):
        out.append(", ".join(items[:-1]))                     # a set missing one of its members
    return out


def latex_of(v: Fraction) -> str:
    s = canonical_rational(v)
    if "/" in s:
        num, den = s.split("/")
        sign = "-" if num.startswith("-") else ""
        return f"{sign}\\frac{{{num.lstrip('-')}}}{{{den}}}"
    return s


def restated(forms, x: str, allow_bare: bool) -> list[str]:
    return [f.format(x=x) for f in forms if f not in ("{x}", "${x}$") or allow_bare]


def test_gsm8k_golds_restated_grade_correct(golds):
    task = get_task("gsm8k")
    bad = [(p.id, r) for p in golds["gsm8k"] for r in restated(GSM8K_FORMS, p.answer, True)
           if task.reward(r, p) != 1.0]
    assert bad == [], bad[:10]


def test_gsm8k_mutated_golds_never_grade_correct(golds):
    task = get_task("gsm8k")
    bad = []
    for p in golds["gsm8k"]:
        v = Fraction(p.answer)
        for m in {v + 1, v * 10 if v else Fraction(7), -v if v else Fraction(-1)} - {v}:
            for r in restated(GSM8K_FORMS, canonical_rational(m), True):
                if task.reward(r, p) == 1.0:
                    bad.append((p.id, r))
    assert bad == [], bad[:10]


def test_math_golds_restated_grade_correct(golds):
    task = get_task("math")
    bad = [(p.id, r) for p in golds["math"]
           for r in restated(MATH_FORMS, p.answer, not prose_words(p.answer))
           if task.reward(r, p) != 1.0]
    assert bad == [], bad[:10]


def math_sample(problems):
    if SAMPLE == "all":
        return problems
    return sorted(problems, key=lambda p: p.id)[::max(1, len(problems) // int(SAMPLE))]


def test_math_mutated_golds_never_grade_correct(golds):
    task = get_task("math")
    sample = math_sample(golds["math"])
    tried, bad = 0, []
    for p in sample:
        for m in math_mutations(p.answer):
            for r in ("\\boxed{%s}" % m, "Final Answer: The final answer is $%s$. I hope it is "
                      "correct." % m):
                tried += 1
                if task.reward(r, p) == 1.0:
                    bad.append((p.id, p.answer, m))
    print(f"\nMATH mutations: {tried} graded on {len(sample)} golds, {len(bad)} graded correct")
    assert tried >= len(sample)
    assert bad == [], bad[:10]
