"""MATH grading: balanced-brace extraction, the normalised fast path, math-verify in a worker
process with a time limit, and the official code's bugs that must not come back."""
import time

import pytest

from rise.tasks import Problem, get_task, last_boxed, normalize_math


def problem(answer: str) -> Problem:
    return Problem(id="p", question="q?", solution="", answer=answer)


@pytest.fixture(scope="module")
def math_task():
    return get_task("math", verify_timeout=3.0)


EXTRACTION = [
    # official bug: one level of nesting gave "\frac{\sqrt{3}"
    ("so $\\boxed{\\frac{\\sqrt{3}}{2}}$.", "\\frac{\\sqrt{3}}{2}"),
    ("\\boxed{\\frac{1}{\\sqrt{\\frac{2}{3}}}}", "\\frac{1}{\\sqrt{\\frac{2}{3}}}"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),                  # escaped braces do not count
    ("\\boxed{a \\\\ b}", "a \\\\ b"),
    ("first \\boxed{1}, finally \\boxed{2}", "2"),         # the last box
    ("\\boxed{1} and \\fbox{3}", "3"),
    ("\\fbox{x+1}", "x+1"),
    ("\\boxed 5$.", "5"),                                   # "\boxed X" without braces
    ("\\boxed {7}", "7"),
    ("\\boxed{ 12 }", "12"),
    ("\\boxed{}", None),
    ("\\boxed{3", None),                                    # unclosed: the answer never finished
    ("\\boxed{1} then \\boxed{2", None),
    ("The answer is 5.", None),                             # no box (other steps: below)
    ("", None),
    ("\\boxedtext{5}", None),
]


@pytest.mark.parametrize("text,expected", EXTRACTION)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


# (response, answer, step): the MATH extraction order of rise.tasks.statements
EXTRACTION_STEPS = [
    ("so $\\boxed{\\frac{\\sqrt{3}}{2}}$.", "\\frac{\\sqrt{3}}{2}", "boxed"),
    ("first \\boxed{1}, finally \\boxed{2}", "2", "boxed"),
    ("\\boxed{1} and \\fbox{3}", "1, 3", "boxed"),                 # chained boxes: one answer
    ("$\\boxed{1}$, $\\boxed{2}$, and $\\boxed{3}$", "1, 2, 3", "boxed"),
    ("$x = \\boxed{3}$, so $y = 2x = \\boxed{6}$.", "6", "boxed"),
    ("\\boxed{3", None, "boxed"),                                  # unclosed: never finished
    ("\\boxed{}", None, "boxed"),
    ("We get \\boxed{4} first.\nFinal Answer: The final answer is $5$. I hope it is correct.",
     "5", "final_answer"),                                        # a later final line wins
    ("The final answer is $\\boxed{7}$.", "7", "boxed"),
    ("Answer $ 9 $", "9", "final_answer"),
    ("**Answer:** $x = 12$", "x = 12", "final_answer"),
    ("The answer is 5.", "5", "final_answer"),
    ("the answer is $1$ and $2$.", "1, 2", "final_answer"),
    ("\\boxed{5}. I hope the answer is correct.", "5", "boxed"),
    ("Thus the largest $n$ is 34.", "34", "last_number"),
    ("So $x = 5$.", "x = 5", "last_math"),
    ("so $a = 2 + 3 = 5$", "5", "last_math"),                     # a chain states its value last
    ("\\boxedtext{5}", "\\boxedtext{5}", "whole"),   # not a box: the whole answer
    ("\\frac{10}{9}", "\\frac{10}{9}", "whole"),                # a bare answer is read whole,
    ("(x-2)(x+2)", "(x-2)(x+2)", "whole"),                        # not as its last number
    ("1,000.99.", "1,000.99", "whole"),
    ("$1,000.99$.", "1,000.99", "last_math"),                    # in delimiters: its last math
    ("Monday.", "Monday", "whole"),                                # a one-word answer
    ("Final Answer: The largest $n$ is 34.", "34", "final_answer"),   # a sentence: its value
    ("Final Answer: Jane started growing it 3 hours ago.", "3", "final_answer"),
    ("Answer $$ \n 9 \n $$", "9", "final_answer"),               # display math spans lines
    ("$\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}$", "(2, 2), (6, 2)", "boxed"),
    ("\\( y_1 = \\boxed{1} \\) and \\( y_2 = \\boxed{2} \\)", "1, 2", "boxed"),
    ("$x = \\boxed{3}$, so $y = 2x = \\boxed{6}$", "6", "boxed"),   # words between: no chain
    ("P(A) = 2/3. So it is 2/3.", "2/3", "last_number"),          # "2/3." at a sentence end
    ("The solutions are $x=1$ and $x=-3$.", "x=1, x=-3", "last_math"),    # chained segments
    ("Since $a=2$, we get $b=3$.", "b=3", "last_math"),            # words between: not chained
    ("how many $? just about 1$", "1", "last_number"),            # words typed inside math
    ("so \\begin{align*} x &= 2+3 \\\\ &= \\frac{16}{65}.\n\\end{align*}", "\\frac{16}{65}",
     "last_math"),                                                # an align states its last row
    ("Thus $2009 \\cdot 2 = 4018.$", "4018", "last_math"),          # arithmetic = value
    ("so $y = 2x + 3$.", "y = 2x + 3", "last_math"),              # an equation is kept
    ("Since $a = 5$, we get $n \\equiv 3 \\pmod{7}$.", "3", "last_math"),
    ("[asy]label(\"$5$\",(2,3));[/asy] The area is $12$.\n[asy]draw((0,0)--(4,4));[/asy]", "12",
     "last_math"),                                                # drawings hold no answer
    ("", None, None),
    ("no answer here", None, None),
]


@pytest.mark.parametrize("text,answer,step", EXTRACTION_STEPS)
def test_extraction_order(math_task, text, answer, step):
    found = math_task.extract(text)
    assert (found.answer, found.step) == (answer, step)


NORMALIZE = [
    ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("\\frac12", "\\frac{1}{2}"), ("\\frac1{10}", "\\frac{1}{10}"),
    ("1/2", "\\frac{1}{2}"), ("90^\\circ", "90"), ("90^{\\circ}", "90"), ("\\$18", "18"),
    ("28\\%", "28"), ("5\\text{ inches}", "5"), ("\\text{Monday}", "Monday"), ("x = 9", "9"),
    ("10,\\!080", "10080"), ("-\\$0.50", "-0.5"), ("18.0", "18"), (".5", "0.5"),
    ("\\left( 1, 2 \\right)", "(1,2)"), ("\\sqrt2", "\\sqrt{2}"), ("9 \\pi", "9\\pi"),
    ("x^2 + 1", "x^2+1"), ("y=x+1", "x+1"), ("a=b=c", "a=b=c"), (None, ""),
]


@pytest.mark.parametrize("answer,expected", NORMALIZE)
def test_normalize(answer, expected):
    assert normalize_math(answer) == expected
    assert normalize_math(normalize_math(answer)) == normalize_math(answer)


EQUIVALENT = [
    # fast path (normalised strings)
    ("\\frac{1}{2}", "\\dfrac12", True),
    ("90", "90^\\circ", True),
    # math-verify in the worker
    ("\\frac{1}{2}", "0.5", True),
    ("(x+1)^2", "x^2+2x+1", True),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{3}", False),
    ("3\\sqrt{2}", "\\sqrt{18}", True),
    ("\\{1,2\\}", "\\{2,1\\}", True),
    ("5", "6", False),
    # no answer is never correct (official: is_equiv(None, None) was True)
    (None, None, False),
    ("5", None, False),
    (None, "5", False),
    ("", "", False),
]


@pytest.mark.parametrize("gold,pred,expected", EQUIVALENT)
def test_equivalence(math_task, gold, pred, expected):
    assert math_task.is_equivalent(pred, gold) is expected


def test_nested_braces_do_not_make_different_answers_equal(math_task):
    # with one-level extraction both responses became "\frac{\sqrt{3}" and compared equal
    gold = problem(last_boxed("\\boxed{\\frac{\\sqrt{3}}{2}}"))
    assert math_task.reward("\\boxed{\\frac{\\sqrt{3}}{3}}", gold) == 0.0
    assert math_task.reward("\\boxed{\\frac{\\sqrt{3}}{2}}", gold) == 1.0


@pytest.mark.parametrize("response,reward", [
    ("\\boxed{\\frac{1}{2}}", 1.0), ("\\boxed{0.5}", 1.0), ("\\boxed{2}", 0.0),
    ("no box at all: 1/2", 1.0), ("no box at all: 2", 0.0), ("", 0.0),
])
def test_rewards_are_one_or_zero(math_task, response, reward):
    assert math_task.unparseable_reward == 0.0
    assert math_task.reward(response, problem("\\frac{1}{2}")) == reward


def test_long_answers_are_wrong_without_sympy():
    task = get_task("math")
    long_answer = "1+" * 600 + "1"
    assert task.reward("\\boxed{" + long_answer + "}", problem("1201")) == 0.0
    stats = task.grader_stats
    assert stats["too_long"] == 1 and stats["verify_calls"] == 0


def test_pathological_answer_is_wrong_within_seconds():
    task = get_task("math", verify_timeout=2.0)
    start = time.monotonic()
    assert task.reward("\\boxed{10^{10^{10}}}", problem("1")) == 0.0    # sympy would never end
    assert time.monotonic() - start < 10
    assert task.grader_stats["timeouts"] == 1
    # the worker was replaced: the next comparison works
    assert task.reward("\\boxed{0.5}", problem("\\frac{1}{2}")) == 1.0


@pytest.mark.parametrize("response", [
    "\\boxed{10^{12345678}}",                      # 7+ digit exponent: rejected before sympy
    "\\boxed{(10^{7})!}",
    "\\boxed{" + "{" * 100_000,                    # unclosed, deeply nested
    "\\boxed{" * 20_000 + "1" + "}" * 20_000,
])
def test_hostile_inputs_are_quick(response):
    task = get_task("math", verify_timeout=2.0)
    start = time.monotonic()
    assert task.reward(response, problem("1")) in (0.0, 1.0)
    assert time.monotonic() - start < 10


def test_grader_stats_count_outcomes():
    task = get_task("math")
    task.reward("\\boxed{\\dfrac12}", problem("\\frac{1}{2}"))
    task.reward("I have nothing to say.", problem("\\frac{1}{2}"))   # ("nothing" alone: an answer)
    stats = task.grader_stats
    assert stats["graded"] == 2 and stats["unparseable"] == 1 and stats["fast_path"] == 1
    assert {"timeouts", "verify_calls", "too_long", "worker_starts"} <= set(stats)


def test_use_math_verify_off_means_string_match_only():
    task = get_task("math", use_math_verify=False)
    assert task.reward("\\boxed{0.5}", problem("\\frac{1}{2}")) == 0.0
    assert task.grader_stats["verify_calls"] == 0


def test_grading_works_off_the_main_thread():
    # math-verify's own SIGALRM timeout raises off the main thread; the worker process does not
    from concurrent.futures import ThreadPoolExecutor
    task = get_task("math")
    with ThreadPoolExecutor(2) as pool:
        rewards = list(pool.map(lambda r: task.reward(r, problem("\\frac{1}{2}")),
                                ["\\boxed{0.5}", "\\boxed{0.25}", "\\boxed{2/4}"]))
    assert rewards == [1.0, 0.0, 1.0]


def test_a_worker_that_cannot_start_is_a_clear_error(monkeypatch, tmp_path):
    from rise.tasks import TaskError, verifier
    broken = tmp_path / "worker.py"
    broken.write_text("import sys; sys.exit(3)\n")
    monkeypatch.setattr(verifier, "WORKER_PATH", str(broken))
    worker = verifier.VerifyWorker(startup_timeout=30)
    with pytest.raises(TaskError, match="math-verify worker failed to start"):
        worker.compare("1", "2", timeout=5)
    worker.close()
