"""Fuzzing the graders: whatever a model writes, extraction and rewards return quickly, never raise,
and give one of the task's reward values."""
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rise.tasks import Problem, get_task

FRAGMENTS = [
    "\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "\\{", "\\}", "\\\\", "\\frac", "\\dfrac", "\\sqrt",
    "^", "^{", "10^{10^{10}}", "9^{9^{9}}", "!", "####", "#### ", "The answer is ", "answer: ",
    "1,000", "1,8", "-", "\u2212", ".", "$", "\\$", "%", "\\%", "x=", "=", " ", "\n", "\\text{",
    "\\left(", "\\right)", "\\infty", "\\pi", "e", "i", "(", ")", "[", "]", ",", "\\begin{pmatrix}",
    "&", "\\end{pmatrix}", "\\in", "\\cup", "\\le", "<", "\\cdot", "\\times", "/", "\\!",
]
NUMBERS = st.one_of(st.integers(-10**30, 10**30).map(str),
                    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str))
PIECES = st.one_of(st.sampled_from(FRAGMENTS), NUMBERS, st.text(max_size=8))
RESPONSES = st.one_of(
    st.text(max_size=200),
    st.lists(PIECES, max_size=40).map("".join),
    st.tuples(st.sampled_from(FRAGMENTS), st.integers(1, 200_000)).map(lambda t: t[0] * t[1]),
    st.tuples(st.integers(1, 5000), NUMBERS).map(                     # deep nesting
        lambda t: "\\boxed{" + "{" * t[0] + t[1] + "}" * t[0] + "}"),
    st.tuples(st.integers(1, 10**12), st.integers(1, 10**12)).map(   # huge exponents
        lambda t: f"\\boxed{{{t[0]}^{{{t[1]}}}}} #### {t[0]}"),
)

GSM8K = get_task("gsm8k")
MATH = get_task("math", verify_timeout=0.5)
GOLDS = {"gsm8k": Problem("g", "q", "", "18"), "math": Problem("m", "q", "", "\\frac{1}{2}")}
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _check(task, response: str, limit_s: float) -> None:
    start = time.monotonic()
    answer = task.extract_answer(response)
    assert answer is None or isinstance(answer, str)
    _, reward = task.grade(response, GOLDS[task.name])
    assert reward in (1.0, 0.0, task.unparseable_reward)
    if answer is None:
        assert reward == task.unparseable_reward
    assert time.monotonic() - start < limit_s


@FUZZ
@given(RESPONSES)
def test_gsm8k_grader_total_and_fast(response):
    _check(GSM8K, response, limit_s=2.0)


@FUZZ
@given(RESPONSES)
def test_math_grader_total_and_bounded(response):
    # 0.5 s comparison limit, plus a possible worker restart after an earlier timeout
    _check(MATH, response, limit_s=15.0)
