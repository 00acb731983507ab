"""The synthetic `arith` task: determinism, disjoint splits, GSM8K-shaped solutions that grade 1.0,
difficulty knobs, and flawed solutions with one propagated slip."""
import random
import re
from collections import Counter

import pytest

from rise.records import write_jsonl
from rise.tasks import TaskError, get_task
from rise.tasks.arith import split_of
from rise.tasks.arith_templates import TEMPLATES

CALC = re.compile(r"(\d+) ([-+*/]) (\d+) = <<(\d+)([-+*/])(\d+)=(\d+)>>(\d+)")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
       "/": lambda a, b: a / b}


@pytest.fixture(scope="module")
def arith():
    return get_task("arith")


@pytest.fixture(scope="module")
def train(arith):
    return arith.load("train", limit=3000)


def check_steps(solution: str):
    """(number of steps, wrong steps, largest value) of a GSM8K-style worked solution."""
    wrong, largest, steps = 0, 0, CALC.findall(solution)
    for a, op, b, a2, op2, b2, r, shown in steps:
        assert (a, op, b, r) == (a2, op2, b2, shown)
        wrong += OPS[op](int(a), int(b)) != int(r)
        largest = max(largest, int(a), int(b), int(r))
    return len(steps), wrong, largest


def test_same_seed_same_problems():
    a = [p.to_dict() for p in get_task("arith", seed=7).load("test", limit=200)]
    b = [p.to_dict() for p in get_task("arith", seed=7).load("test", limit=200)]
    c = [p.to_dict() for p in get_task("arith", seed=8).load("test", limit=200)]
    assert a == b and a != c


def test_limit_is_a_prefix(arith):
    assert arith.load("test", limit=50) == arith.load("test")[:50]
    assert len(arith.load("test")) == 500 and len(arith.load("validation")) == 500


def test_splits_are_disjoint(arith, train):
    full_train = {p.meta["hash"] for p in arith.load("train")}
    assert len(full_train) == 20000
    for split in ("test", "validation"):
        other = arith.load(split)
        assert {p.meta["hash"] for p in other}.isdisjoint(full_train)
        assert all(split_of(p.question) == split for p in other)
    test_hashes = {p.meta["hash"] for p in arith.load("test")}
    assert test_hashes.isdisjoint({p.meta["hash"] for p in arith.load("validation")})


def test_questions_are_distinct_and_ids_follow_the_split(train):
    assert len({p.meta["hash"] for p in train}) == len(train)
    assert train[12].id == "arith-train-00012"


def test_solutions_are_gsm8k_shaped_and_correct(arith, train):
    for p in train:
        steps, wrong, largest = check_steps(p.solution)
        assert wrong == 0 and 2 <= steps <= 4 and largest <= 999, p.solution
        assert p.solution.endswith(f"\n#### {p.answer}")
        assert arith.reward(p.solution, p) == 1.0
        assert len(p.question) < 200 and p.meta["steps"] == steps


def test_variety(train):
    templates = Counter(p.meta["template"] for p in train)
    assert len(TEMPLATES) >= 12 and set(templates) == set(TEMPLATES)
    assert set(Counter(p.meta["steps"] for p in train)) == {2, 3, 4}
    assert len({p.question.split()[0] for p in train}) >= 15       # many names/openings
    assert any(int(a) >= 10 and int(b) >= 10 for p in train
               for a, op, b, *_ in CALC.findall(p.solution) if op == "*")


@pytest.mark.parametrize("knobs,check", [
    ({"max_steps": 2}, lambda p, s, big: s == 2),
    ({"min_steps": 4}, lambda p, s, big: s == 4),
    ({"max_value": 200}, lambda p, s, big: big <= 200),
    ({"ops": "+-"}, lambda p, s, big: "*" not in p.solution and "/" not in p.solution),
    ({"max_factor": 5}, lambda p, s, big: all(min(int(a), int(b)) <= 5 for a, op, b, *_ in
                                              CALC.findall(p.solution) if op in "*/")),
    ({"templates": ["farm", "hall"]}, lambda p, s, big: p.meta["template"] in ("farm", "hall")),
])
def test_difficulty_knobs(knobs, check):
    for p in get_task("arith", **knobs).load("train", limit=200):
        steps, wrong, big = check_steps(p.solution)
        assert wrong == 0 and check(p, steps, big), p.solution


@pytest.mark.parametrize("knobs", [{"min_steps": 3, "max_steps": 2}, {"ops": "+^"},
                                   {"templates": ["nope"]}, {"max_factor": 1}])
def test_bad_knobs(knobs):
    with pytest.raises(TaskError):
        get_task("arith", **knobs)


def test_unknown_split(arith):
    with pytest.raises(TaskError, match="unknown split 'dev'.*train"):
        arith.load("dev")


def test_corrupt_solution_has_one_propagated_slip(arith, train):
    rng = random.Random(0)
    for p in train[:500]:
        bad = arith.corrupt_solution(p, rng)
        steps, wrong, _ = check_steps(bad)
        assert steps == p.meta["steps"] and wrong == 1, bad
        assert arith.extract_answer(bad) is not None
        assert arith.reward(bad, p) == 0.0
        # everything outside the calculations is unchanged
        assert CALC.sub("#", bad.rsplit("####", 1)[0]) == CALC.sub("#", p.solution.rsplit("####", 1)[0])
    assert arith.corrupt_solution(train[0], random.Random(3)) == \
        arith.corrupt_solution(train[0], random.Random(3))


def test_corrupt_needs_a_generated_problem(arith):
    p = arith.load("test", limit=1)[0]
    stripped = type(p)(id=p.id, question=p.question, solution=p.solution, answer=p.answer, meta={})
    with pytest.raises(TaskError, match=p.id):
        arith.corrupt_solution(stripped, random.Random(0))


def test_round_trip_through_jsonl(arith, tmp_path):
    problems = arith.load("test", limit=20)
    write_jsonl(tmp_path / "arith.jsonl", (p.to_dict() for p in problems))
    again = arith.load("test", path=tmp_path / "arith.jsonl")
    assert [(p.id, p.question, p.answer, p.meta["program"]) for p in again] == \
        [(p.id, p.question, p.answer, p.meta["program"]) for p in problems]
    assert arith.corrupt_solution(again[0], random.Random(1)) == \
        arith.corrupt_solution(problems[0], random.Random(1))
