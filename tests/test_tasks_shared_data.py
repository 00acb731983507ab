"""Real data: every gold answer of the GSM8K test split and of the 1000-problem MATH subset, graded
against its own worked solution, scores 1.0 (../shared/data; see conftest.shared_data)."""
import time

import pytest

from rise.tasks import get_task


@pytest.mark.parametrize("name,file,rows", [("gsm8k", "gsm8k_test.jsonl", 1319),
                                            ("math", "math_test.jsonl", 1000)])
def test_gold_answers_grade_their_own_solutions(shared_data, name, file, rows):
    task = get_task(name)
    start = time.monotonic()
    problems = task.load("test", path=shared_data / file)
    assert len(problems) == rows
    assert len({p.id for p in problems}) == rows
    failures = [p.id for p in problems if task.reward(p.solution, p) != 1.0]
    assert failures == []
    assert time.monotonic() - start < 30
    if name == "math":
        assert all(p.meta["level"].startswith("Level") and p.meta["type"] for p in problems)
        assert task.grader_stats["fast_path"] == rows      # no sympy needed for self-grading


def test_math_gold_answers_keep_nested_braces(shared_data):
    problems = get_task("math").load("test", path=shared_data / "math_test.jsonl")
    nested = [p.answer for p in problems if p.answer.count("{") >= 2]
    assert nested, "expected some nested gold answers"
    for answer in nested:
        assert answer.count("{") - answer.count("\\{") == answer.count("}") - answer.count("\\}")


def test_gsm8k_wrong_and_missing_answers(shared_data):
    task = get_task("gsm8k")
    p = task.load("test", path=shared_data / "gsm8k_test.jsonl", limit=1)[0]
    assert task.reward(p.solution.rsplit("####", 1)[0] + "#### 17", p) == 0.0
    assert task.reward(p.solution.rsplit("####", 1)[0], p) == -1.0
