"""GSM8K-style grading (gsm8k and arith): extraction, number normalisation, rewards +1/0/-1."""
import pytest

from rise.tasks import Problem, canonical_number, get_task


def problem(answer: str) -> Problem:
    return Problem(id="p", question="q?", solution="", answer=answer)


@pytest.fixture(scope="module")
def gsm8k():
    return get_task("gsm8k")


EXTRACTION = [
    # plain markers
    ("The answer is 18.", "18"),
    ("#### 18", "18"),
    ("\\boxed{18}", "18"),
    ("Final answer: 18", "18"),
    ("The final answer is: **$18**.", "18"),
    ("So the answer = 42", "42"),
    ("The answer is\n\n7", "7"),
    # number forms (the official code needed int() inside the box)
    ("\\boxed{18.0}", "18"),
    ("\\boxed{18.00}", "18"),
    ("\\boxed{\\$18}", "18"),
    ("\\boxed{$18$}", "18"),
    ("#### $1,000", "1000"),
    ("The answer is 1,000,000.", "1000000"),
    ("\\boxed{1{,}000}", "1000"),
    ("\\boxed{1\\,000}", "1000"),
    ("#### -5", "-5"),
    ("The answer is \u22127", "-7"),
    ("\\boxed{-3}", "-3"),
    ("The answer is 2.50", "2.5"),
    ("The answer is eighteen.", "18"),                     # number words
    ("The answer is two hundred and five dollars.", "205"),
    ("18", "18"),                                          # a response that is one value
    ("$1,000.", "1000"),
    ("The answer is a lot.", None),
    ("The answer is .5", "0.5"),
    ("The answer is 007", "7"),
    ("\\boxed{50\\%}", "50"),
    ("\\boxed{\\frac{7}{2}}", "3.5"),
    ("\\boxed{\\dfrac{6}{3}}", "2"),
    ("\\boxed{x = 18}", "18"),
    ("\\boxed{18 \\text{ apples}}", "18"),
    ("\\boxed{2 \\times 9 = 18}", "18"),
    ("\\boxed{\\textbf{18}}", "18"),
    ("\\fbox{12}", "12"),
    ("\\boxed 12$", "12"),
    # invalid thousands separators are ambiguous, not a number
    ("\\boxed{1,8}", None),
    ("#### 1,8", None),
    ("The answer is 12,34", None),
    # which marker wins: last box, else last ####, else last "answer is"
    ("\\boxed{3} then \\boxed{4}", "4"),
    ("#### 3\n#### 4", "4"),
    ("The answer is 3. No wait, the answer is 4.", "4"),
    ("#### 5\nThe answer is 6", "6"),               # the later final statement wins
    ("The answer is 6\n\\boxed{7}", "7"),
    ("#### 5 and \\boxed{9}", "9"),
    ("\\boxed{abc}\n#### 5", "5"),           # the last marker decides
    ("#### 5\n\\boxed{abc}", None),           # ... even when it holds no number
    ("\\boxed{}", None),
    ("\\boxed{18", None),                     # unclosed box: never finished
    ("\\boxed{\\frac{1}{3}}", "1/3"),         # exact, not a finite decimal: a value all the same
    ("\\boxed{\\frac{10}{3}}", "10/3"),
    # final statements, fractions, mixed numbers, times, scientific notation
    ("The answer is 9 * 2 = 18.", "18"),
    ("#### 16\nSo the answer is 18.", "18"),
    ("#### 1/2", "0.5"), ("\\boxed{1/2}", "0.5"), ("#### 2 1/2", "2.5"),
    ("\\boxed{2\\frac{1}{2}}", "2.5"), ("\\boxed{-2 1/2}", "-2.5"),
    ("\\boxed{3:00}", "3"), ("The answer is 7:30 pm.", "7.5"),
    ("#### 5e3", "5000"), ("\\boxed{5 \\times 10^3}", "5000"), ("#### 2.5e-1", "0.25"),
    ("The answer is 5 dollars, so 40 hours make 200.", "5"),
    ("The final answer is $\\boxed{18}$.", "18"),
    # no final answer at all: no "last number" fallback
    ("", None),
    ("18 apples", None),
    ("So 5 + 3 = 8 and 8 * 2 = 16.", None),
    ("The answer is unclear", None),
]


@pytest.mark.parametrize("text,expected", EXTRACTION)
def test_extraction(gsm8k, text, expected):
    assert gsm8k.extract_answer(text) == expected


CANONICAL = [
    ("18", "18"), ("18.0", "18"), ("18.00", "18"), ("0018", "18"), ("1,000", "1000"),
    ("1,000.50", "1000.5"), ("-0", "0"), ("-0.0", "0"), ("\u22125", "-5"), (".5", "0.5"),
    ("1,8", None), ("1,0000", None), ("12,34,567", None), ("", None), ("-", None),
    ("9" * 5000, "9" * 5000),                 # no int(): > 4300 digits is fine
]


@pytest.mark.parametrize("token,expected", CANONICAL)
def test_canonical_number(token, expected):
    assert canonical_number(token) == expected


EQUIVALENT = [
    ("18", "18.0", True), ("18.00", "18", True), ("$18", "18", True), ("1,000", "1000", True),
    ("1,8", "18", False), ("18", "19", False), ("-5", "5", False), ("0.5", ".5", True),
    (None, "18", False), (None, None, False), ("", "", False),
]


@pytest.mark.parametrize("pred,gold,expected", EQUIVALENT)
def test_equivalence(gsm8k, pred, gold, expected):
    assert gsm8k.is_equivalent(pred, gold) is expected


@pytest.mark.parametrize("name", ["gsm8k", "arith"])
@pytest.mark.parametrize("response,reward", [
    ("She makes 9 * 2 = 18 dollars.\n#### 18", 1.0),
    ("\\boxed{18.0}", 1.0),
    ("\\boxed{\\$18}", 1.0),
    ("The answer is 17.", 0.0),
    ("I think it is 18 but I am not sure.", -1.0),
    ("", -1.0),
])
def test_rewards(name, response, reward):
    task = get_task(name)
    assert task.unparseable_reward == -1.0
    assert task.reward(response, problem("18")) == reward


def test_grade_returns_answer_and_reward(gsm8k):
    assert gsm8k.grade("#### 1,000", problem("1000")) == ("1000", 1.0)
    assert gsm8k.grade("nothing", problem("1000")) == (None, -1.0)


def test_no_answer_is_never_correct_even_with_empty_gold(gsm8k):
    # the official is_equiv(None, None) scored "no answer" correct when the gold was unparseable
    assert gsm8k.reward("no answer here", problem("")) == -1.0


def test_normalize_is_the_vote_key(gsm8k):
    keys = {gsm8k.normalize(a) for a in ("18", "18.0", "$18", "18.00")}
    assert keys == {"18"}
    assert gsm8k.normalize(" seven ") == "seven"
