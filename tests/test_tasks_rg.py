"""`rg:<name>` tasks: reasoning-gym datasets as rise tasks (issue 12)."""
import json
import subprocess
import sys

import pytest

from rise.tasks import Problem, TaskError, get_task, task_options

pytest.importorskip("reasoning_gym")

NAMES = ["basic_arithmetic", "chain_sum", "leg_counting"]


def test_import_rise_does_not_import_reasoning_gym():
    code = "import sys, rise, rise.tasks, rise.cli; print('reasoning_gym' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", NAMES)
def test_load_gives_problem_records(name):
    problems = get_task(f"rg:{name}").load("test", limit=20)
    assert len(problems) == 20 and len({p.id for p in problems}) == 20
    for p in problems:
        assert p.answer and "The answer is" in p.question and p.meta["rg_dataset"] == name
        assert Problem(**json.loads(json.dumps(p.to_dict()))) == p   # JSON-replayable


@pytest.mark.parametrize("name", NAMES)
def test_splits_disjoint_and_deduplicated(name):
    task = get_task(f"rg:{name}")
    train, test = task.load("train", limit=400), task.load("test", limit=100)
    train_h, test_h = {p.meta["hash"] for p in train}, {p.meta["hash"] for p in test}
    assert len(train_h) == 400 and len(test_h) == 100     # no repeats within a split
    assert not train_h & test_h


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_prefix(name):
    a = get_task(f"rg:{name}", seed=3).load("train", limit=30)
    b = get_task(f"rg:{name}", seed=3).load("train", limit=10)
    assert [p.to_dict() for p in a[:10]] == [p.to_dict() for p in b]
    other = get_task(f"rg:{name}", seed=4).load("train", limit=30)
    assert [p.question for p in a] != [p.question for p in other]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("template, reward, step", [
    ("Adding up, <answer>{gold}</answer>", 1.0, "tag"),
    ("So the answer is \\boxed{{{gold}}}.", 1.0, "boxed"),
    ("The answer is {gold}.", 1.0, "final_answer"),
    ("The answer is: **{gold}** apples.", 1.0, "final_answer"),
    ('The answer is "{gold}".', 1.0, "final_answer"),
    ("The answer is {wrong}.\nThe answer is $\\boxed{{{gold}}}$", 1.0, "boxed"),
    ("<answer>{gold}</answer> wait, the answer is {wrong}.", 0.0, "final_answer"),  # last wins
    ("<answer>{wrong}</answer>", 0.0, "tag"),
    ("I think it is {gold} but I am not sure", 0.0, None),        # no stated answer
    ("<answer>{gold}", 0.0, "tag"),                                # tag never closed
    ("", 0.0, None),
])
def test_grading(name, template, reward, step):
    task = get_task(f"rg:{name}")
    p = task.load("test", limit=1)[0]
    wrong = str(int(p.answer) + 7)
    g = task.judge(template.format(gold=p.answer, wrong=wrong), p)
    assert (g.reward, g.extracted_by) == (reward, step)
    assert (g.answer is None) == (step is None or template.endswith("{gold}"))


@pytest.mark.parametrize("text, answer", [
    ("The answer is: his, content, the", "his, content, the"),     # a list is one answer
    ("The answer is olleh. I hope it is correct.", "olleh"),
    ("The answer is 3.5\nbye", "3.5"),
    ("<answer> a, b </answer>", "a, b"),
    ("The answer is", None),
])
def test_statement_reads_to_end_of_sentence(text, answer):
    assert get_task("rg:chain_sum").extract_answer(text) == answer


@pytest.mark.parametrize("name", [*NAMES, "word_sequence_reversal", "rotate_matrix", "word_sorting"])
def test_reference_solution_grades_right(name):
    task = get_task(f"rg:{name}")
    assert all(task.reward(p.solution, p) == 1.0 for p in task.load("train", limit=10))


@pytest.mark.parametrize("gold, solution", [
    ("42", "The answer is 42."),
    ("a, b", "The answer is a, b."),
    ("1 2\n3 4", "<answer>1 2\n3 4</answer>"),          # a grid does not fit in a sentence
])
def test_reference_solution_form(gold, solution):
    from rise.tasks.rg import reference_solution
    assert reference_solution(gold) == solution


def test_partial_credit_keeps_the_verifier_score():
    # word_sorting's verifier gives partial scores to wrong but well-formed answers
    strict, soft = get_task("rg:word_sorting"), get_task("rg:word_sorting", partial_credit=True)
    p = strict.load("test", limit=1)[0]
    words = p.answer.split(", ")
    wrong = ", ".join(reversed(words))
    s = soft.score(wrong, p)
    assert 0.0 < s < 1.0
    assert strict.judge(f"<answer>{wrong}</answer>", p).reward == (1.0 if s >= 1.0 else 0.0)
    assert soft.judge(f"<answer>{wrong}</answer>", p).reward == s
    assert soft.judge(f"<answer>{p.answer}</answer>", p).reward == 1.0


def test_dataset_options_pass_through():
    task = get_task("rg:chain_sum", min_terms=2, max_terms=2, min_digits=1, max_digits=1)
    assert {"min_terms", "max_digits", "seed", "partial_credit"} <= set(task_options("rg:chain_sum"))
    for p in task.load("train", limit=20):
        assert p.meta["rg_metadata"]["num_terms"] == 2


@pytest.mark.parametrize("name, options, match", [
    ("rg:chain_summ", {}, "close names: chain_sum"),
    ("rg:chain_sum", {"nope": 1}, "unknown option.*nope"),
    ("rg:chain_sum", {"min_terms": 5, "max_terms": 2}, "max_terms"),
])
def test_bad_input_is_one_line_task_error(name, options, match):
    with pytest.raises(TaskError, match=match) as e:
        get_task(name, **options)
    assert "\n" not in str(e.value)


def test_missing_reasoning_gym_says_how_to_install(monkeypatch):
    import importlib.util

    from rise.tasks import rg
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "reasoning_gym" else real(n, *a))
    with pytest.raises(TaskError, match=r"pip install 'recursive-introspection\[rg\]'"):
        rg.require_reasoning_gym()


def test_cli_collect_on_rg_task(tiny_model, tmp_path):
    pytest.importorskip("torch")
    from rise.cli import main

    out = tmp_path / "collect"
    assert main(["collect", "--policy", tiny_model, "--task", "rg:chain_sum", "--limit", "3",
                 "--turns", "2", "--sampling.max_new_tokens", "8", "--set",
                 "task_options.max_terms=3", "--out", str(out), "--threads", "1", "--quiet"]) == 0
    recs = [json.loads(x) for x in (out / "rollouts.jsonl").read_text().splitlines()]
    task = get_task("rg:chain_sum", max_terms=3)
    problems = {p.id: p for p in task.load("train", limit=3)}
    assert {r["problem_id"] for r in recs} == set(problems)
    for rec in recs:                       # a record replays: re-grading gives the same reward
        p = problems[rec["problem_id"]]
        assert rec["gold"] == p.answer
        for cand in rec["candidates"]:
            assert task.reward(cand["text"], p) == cand["reward"]
