"""Task registry and loaders: local JSONL / parquet / saved datasets, the Hub defaults (with a
fake `datasets` module, no network), column mapping, and errors that name the culprit."""
import json
import subprocess
import sys
import types

import pytest

from rise.tasks import TaskError, get_task, problem_hash, task_options

GSM_ROWS = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "Mia has 10 pens and loses 2. How many?", "answer": "10 - 2 = 8\n#### 8"},
    {"question": "A box has 2 rows of 5. How many?", "answer": "2 * 5 = 10\n#### 1,000"},
]
MATH_ROWS = [
    {"problem": "What is 1/2 + 1/2?", "solution": "It is $\\boxed{1}$.", "level": "Level 1",
     "type": "Algebra"},
    {"problem": "Simplify sqrt(3)/2.", "solution": "$\\boxed{\\frac{\\sqrt{3}}{2}}$",
     "level": "Level 2", "type": "Algebra"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- registry ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,unparseable", [("gsm8k", -1.0), ("math", 0.0), ("arith", -1.0),
                                              ("GSM8K", -1.0)])
def test_get_task(name, unparseable):
    task = get_task(name)
    assert task.name == name.lower() and task.unparseable_reward == unparseable


def test_unknown_task_lists_known_names():
    with pytest.raises(TaskError, match="gsm8k.*math|arith.*gsm8k"):
        get_task("mmlu")


def test_unknown_option_lists_options():
    with pytest.raises(TaskError, match="questionfield.*question_field"):
        get_task("gsm8k", questionfield="q")
    assert "seed" in task_options("arith") and "verify_timeout" in task_options("math")


def test_import_is_standard_library_only():
    code = ("import sys; before = set(sys.modules); import rise.tasks; "
            "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
            "print(sorted(m for m in new if m not in sys.stdlib_module_names and m != 'rise'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- local files ---------------------------------------------------------------------------------
def test_jsonl_gsm8k(tmp_path):
    problems = get_task("gsm8k").load("test", path=write_jsonl(tmp_path / "g.jsonl", GSM_ROWS))
    assert [p.answer for p in problems] == ["7", "8", "1000"]
    assert [p.id for p in problems] == ["gsm8k-test-00000", "gsm8k-test-00001", "gsm8k-test-00002"]
    assert problems[0].meta["hash"] == problem_hash(GSM_ROWS[0]["question"])
    assert problems[0].solution == GSM_ROWS[0]["answer"]


def test_limit_takes_the_first_rows(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", GSM_ROWS)
    assert [p.answer for p in get_task("gsm8k").load("test", path=path, limit=2)] == ["7", "8"]
    assert get_task("gsm8k").load("test", path=path, limit=0) == []
    with pytest.raises(TaskError, match="limit"):
        get_task("gsm8k").load("test", path=path, limit=-1)


def test_jsonl_math_keeps_extra_fields_and_ids(tmp_path):
    rows = [dict(r, unique_id=f"test/algebra/{i}.json") for i, r in enumerate(MATH_ROWS)]
    problems = get_task("math").load("test", path=write_jsonl(tmp_path / "m.jsonl", rows))
    assert [p.answer for p in problems] == ["1", "\\frac{\\sqrt{3}}{2}"]
    assert problems[1].id == "test/algebra/1.json"
    assert problems[1].meta["level"] == "Level 2" and problems[1].meta["type"] == "Algebra"


def test_column_mapping_and_answer_column(tmp_path):
    rows = [{"q": "How many?", "final": 18, "uid": "a"}, {"q": "And now?", "final": "$1,000",
                                                          "uid": "b"}]
    task = get_task("gsm8k", question_field="q", solution_field=None, answer_field="final",
                    id_field="uid")
    problems = task.load("train", path=write_jsonl(tmp_path / "x.jsonl", rows))
    assert [(p.id, p.answer, p.solution) for p in problems] == [("a", "18", ""), ("b", "1000", "")]
    m = get_task("math", answer_field="answer").load(
        "test", path=write_jsonl(tmp_path / "m.jsonl", [dict(MATH_ROWS[0], answer="\\frac12")]))
    assert m[0].answer == "\\frac12"


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    path = tmp_path / "g.parquet"
    pq.write_table(pa.Table.from_pylist(GSM_ROWS), path)
    assert [p.answer for p in get_task("gsm8k").load("test", path=path)] == ["7", "8", "1000"]


def test_saved_dataset_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict({"test": datasets.Dataset.from_list(MATH_ROWS)}).save_to_disk(
        str(tmp_path / "ds"))
    assert [p.answer for p in get_task("math").load("test", path=tmp_path / "ds")] == [
        "1", "\\frac{\\sqrt{3}}{2}"]
    with pytest.raises(TaskError, match="no split 'train'"):
        get_task("math").load("train", path=tmp_path / "ds")


# -- errors name the culprit ---------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(TaskError, match="nope.jsonl"):
        get_task("gsm8k").load("test", path=tmp_path / "nope.jsonl")


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GSM_ROWS[0]) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(TaskError, match=r"bad.jsonl:3: malformed JSON"):
        get_task("gsm8k").load("test", path=path)


def test_non_object_line(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(TaskError, match=r"list.jsonl:1: expected a JSON object"):
        get_task("gsm8k").load("test", path=path)


def test_missing_column_names_column_file_and_line(tmp_path):
    rows = [GSM_ROWS[0], {"question": "No solution here?"}]
    with pytest.raises(TaskError, match=r"g.jsonl:2: missing column 'answer'"):
        get_task("gsm8k").load("test", path=write_jsonl(tmp_path / "g.jsonl", rows))
    with pytest.raises(TaskError, match=r"m.jsonl:1: missing column 'problem'"):
        get_task("math").load("test", path=write_jsonl(tmp_path / "m.jsonl", GSM_ROWS))


@pytest.mark.parametrize("question", ["", "   ", None])
def test_empty_question_names_the_row(tmp_path, question):
    rows = [GSM_ROWS[0], dict(GSM_ROWS[1], question=question)]
    with pytest.raises(TaskError, match=r"g.jsonl:2: empty question \(problem gsm8k-test-00001\)"):
        get_task("gsm8k").load("test", path=write_jsonl(tmp_path / "g.jsonl", rows))


def test_duplicate_ids(tmp_path):
    rows = [dict(r, id="same") for r in GSM_ROWS[:2]]
    with pytest.raises(TaskError, match=r"g.jsonl:2: duplicate id 'same' \(first at .*g.jsonl:1\)"):
        get_task("gsm8k").load("test", path=write_jsonl(tmp_path / "g.jsonl", rows))


@pytest.mark.parametrize("task,rows,culprit", [
    ("gsm8k", [GSM_ROWS[0], dict(GSM_ROWS[1], answer="no final line")], "g.jsonl:2: problem "
     "gsm8k-test-00001: cannot parse the gold"),
    ("gsm8k", [dict(GSM_ROWS[0], answer="#### 1,8")], "g.jsonl:1: problem gsm8k-test-00000"),
    ("math", [dict(MATH_ROWS[0], id="m-6"), dict(MATH_ROWS[1], solution="no box", id="m-7")],
     "g.jsonl:2: problem m-7: cannot parse the gold"),
    ("math", [dict(MATH_ROWS[0], solution="\\boxed{}")], "g.jsonl:1: problem math-test-00000"),
])
def test_unparseable_gold_raises_naming_the_problem(tmp_path, task, rows, culprit):
    with pytest.raises(TaskError, match=culprit.replace("(", r"\(")):
        get_task(task).load("test", path=write_jsonl(tmp_path / "g.jsonl", rows))


def test_unparseable_answer_column(tmp_path):
    rows = [{"question": "How many?", "final": "lots"}]
    task = get_task("gsm8k", solution_field=None, answer_field="final")
    with pytest.raises(TaskError, match=r"x.jsonl:1: .*column 'final' = 'lots'"):
        task.load("test", path=write_jsonl(tmp_path / "x.jsonl", rows))


def test_no_gold_source_is_a_config_error():
    with pytest.raises(TaskError, match="solution_field or answer_field"):
        get_task("gsm8k", solution_field=None)


# -- Hub defaults (fake `datasets`, no network) --------------------------------------------------
@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        if name == "openai/gsm8k":
            return list(GSM_ROWS)
        return [dict(r, unique_id=f"{config}/{split}/{i}") for i, r in enumerate(MATH_ROWS)]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_hub_gsm8k_default(fake_hub):
    problems = get_task("gsm8k").load("train", limit=2)
    assert fake_hub == [("openai/gsm8k", "main", "train")] and len(problems) == 2


def test_hub_math_defaults(fake_hub):
    get_task("math").load("test")
    assert fake_hub == [("HuggingFaceH4/MATH-500", None, "test")]
    fake_hub.clear()
    problems = get_task("math").load("train")
    assert [c[1] for c in fake_hub][:2] == ["algebra", "counting_and_probability"]
    assert len(fake_hub) == 7 and len(problems) == 14
    fake_hub.clear()
    get_task("math", hub_id="EleutherAI/hendrycks_math", hub_config="geometry").load("test")
    assert fake_hub == [("EleutherAI/hendrycks_math", "geometry", "test")]


def test_hub_failure_is_a_task_error(monkeypatch):
    def load_dataset(*args, **kwargs):
        raise ConnectionError("offline")
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(TaskError, match="openai/gsm8k.*offline.*path="):
        get_task("gsm8k").load("test")
