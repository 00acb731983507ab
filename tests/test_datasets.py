"""Real datasets: Hub ids (fake `datasets` module, no network), local JSONL / parquet / saved
`datasets` directories with a column mapping, other single-answer tasks named by their columns
and grader, flags -> task options, and train/test splits checked by problem hash.

(tests/test_tasks_loading.py covers the loaders' defaults and error messages; this file covers
what a user with their own data does.)
"""
from __future__ import annotations

import json
import sys
import types

import pytest

from rise.tasks import TaskError, get_task, problem_hash
from rise.tasks.splits import check_disjoint, in_test, overlap, split_jsonl
from rise.tasks.splits import main as splits_main

# A dataset with its own column names: "Body"/"Ask" question, "Work" worked solution, "Result"
# numeric answer, "key" ids (an SVAMP-like layout).
OWN_ROWS = [
    {"key": "a1", "Body": "Ann has 3 red and 4 blue pens.", "Work": "3 + 4 = 7. #### 7", "Result": 7.0},
    {"key": "a2", "Body": "Ben had 12 eggs and ate 5.", "Work": "12 - 5 = 7. #### 7", "Result": "7"},
    {"key": "a3", "Body": "A crate holds 4 rows of 25 jars.", "Work": "4 * 25 = 100 #### 100",
     "Result": "1,00"},
]
LATEX_ROWS = [
    {"uid": "x/1", "prompt": "Compute 1/2 + 1/4.", "final": "\\frac{3}{4}"},
    {"uid": "x/2", "prompt": "Solve x^2 = 4 for x > 0.", "final": "$x = 2$"},
    {"uid": "x/3", "prompt": "Give sqrt(8) in simplest form.", "final": "\\boxed{2\\sqrt{2}}"},
]
OWN_MAP = dict(question_field="Body", solution_field="Work", answer_field="Result", id_field="key")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- Hub ids: the calls made, with a fake `datasets` (no network) ---------------------------------
class FakeDataset(list):
    """Iterable rows, like `datasets.Dataset`; counts how many rows were read."""

    def __iter__(self):
        for row in super().__iter__():
            FakeDataset.read += 1
            yield row


@pytest.fixture
def hub(monkeypatch):
    calls = []
    data = {
        ("openai/gsm8k", "main"): [{"question": f"Q{i}: 2 + {i}?", "answer": f"2 + {i}\n#### {2 + i}"}
                                   for i in range(50)],
        ("HuggingFaceH4/MATH-500", None): [{"problem": "1+1?", "solution": "\\boxed{2}",
                                            "answer": "2", "unique_id": "test/a/1.json"}],
        ("me/own-data", None): OWN_ROWS,
        ("me/latex", "v2"): LATEX_ROWS,
    }

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        if (name, config) not in data:
            raise FileNotFoundError(f"Dataset '{name}' doesn't exist on the Hub")
        return FakeDataset(data[(name, config)])

    FakeDataset.read = 0
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_openai_gsm8k_main_both_splits(hub):
    train = get_task("gsm8k").load("train", limit=5)
    test = get_task("gsm8k").load("test", limit=5)
    assert hub == [("openai/gsm8k", "main", "train"), ("openai/gsm8k", "main", "test")]
    assert [p.answer for p in train] == ["2", "3", "4", "5", "6"]
    assert train[0].id == "gsm8k-train-00000" and test[0].id == "gsm8k-test-00000"
    assert FakeDataset.read <= 12           # limit stops reading (islice), not load-all-then-cut


def test_math500_uses_its_answer_column_when_asked(hub):
    p = get_task("math", answer_field="answer").load("test")[0]
    assert hub == [("HuggingFaceH4/MATH-500", None, "test")]
    assert (p.id, p.answer, p.solution) == ("test/a/1.json", "2", "\\boxed{2}")


def test_any_hub_dataset_with_a_column_mapping(hub):
    task = get_task("gsm8k", hub_id="me/own-data", hub_config=None, **OWN_MAP)
    problems = task.load("train", limit=2)
    assert hub == [("me/own-data", None, "train")]
    assert [(p.id, p.answer) for p in problems[:2]] == [("a1", "7"), ("a2", "7")]
    with pytest.raises(TaskError, match=r"me/own-data\[train\]: row 3: problem a3: cannot parse "
                                        r"the gold answer from column 'Result'"):
        task.load("train", limit=3)    # "1,00" is not a number: named, with its row and id


def test_unknown_hub_dataset_is_one_task_error(hub):
    with pytest.raises(TaskError, match=r"cannot load me/nothing split 'test'.*doesn't exist.*path="):
        get_task("gsm8k", hub_id="me/nothing", hub_config=None).load("test")


# -- local files with a column mapping -----------------------------------------------------------
def _check_own(problems):
    assert [(p.id, p.answer) for p in problems] == [("a1", "7"), ("a2", "7")]
    assert problems[0].solution == "3 + 4 = 7. #### 7" and problems[0].question == OWN_ROWS[0]["Body"]
    assert problems[0].meta["hash"] == problem_hash(OWN_ROWS[0]["Body"])


def test_jsonl_with_column_mapping(tmp_path):
    path = write_jsonl(tmp_path / "own.jsonl", OWN_ROWS[:2])
    _check_own(get_task("gsm8k", **OWN_MAP).load("test", path=path))


def test_parquet_with_column_mapping(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [dict(r, Result=str(r["Result"])) for r in OWN_ROWS[:2]]   # one type per column
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "own.parquet")
    _check_own(get_task("gsm8k", **OWN_MAP).load("test", path=tmp_path / "own.parquet"))


def test_saved_dataset_and_dataset_dict_with_column_mapping(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [dict(r, Result=str(r["Result"])) for r in OWN_ROWS[:2]]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "flat"))        # a bare Dataset
    _check_own(get_task("gsm8k", **OWN_MAP).load("test", path=tmp_path / "flat"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dd"))
    _check_own(get_task("gsm8k", **OWN_MAP).load("train", path=tmp_path / "dd"))


def test_solution_only_gold_comes_from_the_solution(tmp_path):
    path = write_jsonl(tmp_path / "own.jsonl", OWN_ROWS)
    task = get_task("gsm8k", question_field="Body", solution_field="Work", id_field="key")
    assert [p.answer for p in task.load("test", path=path)] == ["7", "7", "100"]


# -- any other single-answer task: its columns and its grader -------------------------------------
def test_numeric_answers_with_the_gsm8k_grader(tmp_path):
    task = get_task("gsm8k", question_field="Body", solution_field=None, answer_field="Result",
                    id_field="key")
    problems = task.load("test", path=write_jsonl(tmp_path / "own.jsonl", OWN_ROWS[:2]))
    assert problems[0].solution == "" and problems[0].answer == "7"
    assert task.grade("3 + 4 = 7, so the answer is \\boxed{7}.", problems[0]) == ("7", 1.0)
    assert task.grade("#### 7.00", problems[0]) == ("7", 1.0)
    assert task.grade("#### 8", problems[0]) == ("8", 0.0)
    assert task.grade("I am not sure.", problems[0]) == (None, -1.0)


def test_latex_answers_with_the_math_grader(tmp_path):
    task = get_task("math", question_field="prompt", solution_field=None, answer_field="final",
                    id_field="uid", use_math_verify=False)
    problems = task.load("test", path=write_jsonl(tmp_path / "latex.jsonl", LATEX_ROWS))
    assert [p.answer for p in problems] == ["\\frac{3}{4}", "x = 2", "2\\sqrt{2}"]  # $...$ read as its content
    assert task.grade("so \\boxed{\\dfrac{3}{4}}", problems[0])[1] == 1.0
    assert task.grade("\\boxed{3/4}", problems[0])[1] == 1.0
    assert task.grade("\\boxed{2}", problems[1])[1] == 1.0          # "$x = 2$" -> "2"
    assert task.grade("\\boxed{2\\sqrt2}", problems[2])[1] == 1.0
    assert task.grade("\\boxed{3}", problems[2]) == ("3", 0.0)
    assert task.grade("no box", problems[2]) == (None, 0.0)


def test_task_options_flag_reaches_the_task(tmp_path):
    """`--task_options '{...}'` on the command line is the keyword arguments of get_task."""
    from rise.cli import _overrides, build_parser
    from rise.config import resolve
    from rise.evaluate import EvalConfig

    args = build_parser().parse_args([
        "eval", "--task", "gsm8k", "--data_path", "own.jsonl",
        "--task_options", "{question_field: Body, solution_field: null, answer_field: Result}",
        "--set", "task_options.id_field=key"])
    cfg = resolve(EvalConfig, None, _overrides(args))
    assert cfg.task_options == {"question_field": "Body", "solution_field": None,
                                "answer_field": "Result", "id_field": "key"}
    task = get_task(cfg.task, **cfg.task_options)
    problems = task.load(cfg.split, path=write_jsonl(tmp_path / "own.jsonl", OWN_ROWS[:2]))
    assert [p.id for p in problems] == ["a1", "a2"]


# -- train/test never overlap, by problem hash ----------------------------------------------------
def _problems(tmp_path, name, rows, split):
    return get_task("gsm8k").load(split, path=write_jsonl(tmp_path / name, rows))


GSM = [{"question": f"Sam has {i} apples and gets {i + 1} more. How many now?",
        "answer": f"{i} + {i + 1} = {2 * i + 1}\n#### {2 * i + 1}"} for i in range(40)]


def test_disjoint_sets_pass(tmp_path):
    check_disjoint(_problems(tmp_path, "a.jsonl", GSM[:20], "train"),
                   _problems(tmp_path, "b.jsonl", GSM[20:], "test"))
    check_disjoint([], _problems(tmp_path, "b.jsonl", GSM[20:], "test"))


def test_overlap_names_the_problem_in_both_sets(tmp_path):
    train = _problems(tmp_path, "a.jsonl", GSM[:20], "train")
    # The same question, with other whitespace, under another id and in another file.
    moved = dict(GSM[7], question="  " + GSM[7]["question"].replace(" ", "\n  ", 2))
    test = _problems(tmp_path, "b.jsonl", GSM[20:25] + [moved] + [GSM[3]], "test")
    with pytest.raises(TaskError) as e:
        check_disjoint(train, test)
    msg = str(e.value)
    assert "\n" not in msg
    assert "test problem gsm8k-test-00005 is training problem gsm8k-train-00007" in msg
    assert problem_hash(GSM[7]["question"]) in msg and "Sam has 7 apples" in msg
    assert "(2 overlapping problems in all)" in msg
    assert [(a, b) for a, b, _ in overlap(train, test)] == [
        ("gsm8k-train-00007", "gsm8k-test-00005"), ("gsm8k-train-00003", "gsm8k-test-00006")]


def test_check_disjoint_accepts_rows_and_strings():
    check_disjoint(["What is 1 + 1?"], [{"question": "What is 2 + 2?"}])
    with pytest.raises(TaskError, match="test problem q9 is training problem"):
        check_disjoint(["What is  1 + 1?"], [{"id": "q9", "question": "What is 1 + 1?"}])


def test_split_jsonl_is_disjoint_complete_and_deterministic(tmp_path):
    rows = GSM + [GSM[0]]                                 # a repeated question stays on one side
    src = write_jsonl(tmp_path / "all.jsonl", rows)
    n = split_jsonl(src, tmp_path / "tr.jsonl", tmp_path / "te.jsonl")
    assert sum(n) == len(rows) and 0 < n[1] < len(rows)
    train = _problems(tmp_path, "tr.jsonl", [json.loads(x) for x in open(tmp_path / "tr.jsonl")], "train")
    test = get_task("gsm8k").load("test", path=tmp_path / "te.jsonl")
    check_disjoint(train, test)
    assert {p.meta["hash"] for p in train} | {p.meta["hash"] for p in test} == {
        problem_hash(r["question"]) for r in rows}
    first = (tmp_path / "te.jsonl").read_bytes()
    split_jsonl(src, tmp_path / "tr2.jsonl", tmp_path / "te2.jsonl")
    assert (tmp_path / "te2.jsonl").read_bytes() == first
    assert all(in_test(q, 1.0) and not in_test(q, 0.0) for q in ("a", "b", "c"))
    with pytest.raises(TaskError, match="test_fraction"):
        in_test("a", 1.5)


def test_split_command_line(tmp_path, capsys):
    src = write_jsonl(tmp_path / "all.jsonl", [dict(q=r["question"], a=r["answer"]) for r in GSM])
    assert splits_main([str(src), "--train", str(tmp_path / "tr.jsonl"), "--test",
                        str(tmp_path / "te.jsonl"), "--question-field", "q",
                        "--test-fraction", "0.25"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["train"] + counts["test"] == len(GSM) and counts["test"] < counts["train"]
    assert splits_main([str(src), "--train", "x", "--test", "y"]) == 2
    assert "missing column 'question'" in capsys.readouterr().err


def test_shared_gsm8k_file_splits_into_disjoint_halves(shared_data, tmp_path):
    split_jsonl(shared_data / "gsm8k_test.jsonl", tmp_path / "tr.jsonl", tmp_path / "te.jsonl")
    task = get_task("gsm8k")
    train = task.load("train", path=tmp_path / "tr.jsonl")
    test = task.load("test", path=tmp_path / "te.jsonl")
    check_disjoint(train, test)
    assert len(train) + len(test) == 1319 and abs(len(train) - len(test)) < 100
    with pytest.raises(TaskError, match="overlap"):
        check_disjoint(train, test + train[:1])
