"""Issue 12 (out of distribution, the paper's Table 3): `eval.tasks` evaluates every row again on
other tasks, each its own resumable stage, gathered into the report's "Out of distribution"
section."""
import json

import pytest

from rise.cli import main
from rise.config import ConfigError, resolve
from rise.run import RunConfig

GSM8K_ROWS = [{"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
               "answer": "3 + 4 = 7\n#### 7"},
              {"question": "A box holds 6 pens. How many pens are in 2 boxes?", "answer": "6 * 2 = 12\n#### 12"},
              {"question": "Ann had 10 coins and spent 3. How many are left?", "answer": "10 - 3 = 7\n#### 7"}]


@pytest.fixture
def gsm8k_file(tmp_path):
    path = tmp_path / "gsm8k_tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    return str(path)


def test_entries_parse_from_yaml_and_a_saved_config_loads_again(tmp_path, gsm8k_file):
    from rise.config import save_config

    (tmp_path / "run.yaml").write_text(
        "eval:\n  tasks:\n    - {task: arith, task_options: {max_steps: 4}, name: arith-4, limit: 7}\n"
        f"    - {{task: gsm8k, data_path: {gsm8k_file}}}\n")
    cfg = resolve(RunConfig, str(tmp_path / "run.yaml"))
    first, second = cfg.eval.tasks
    assert (first.task, first.task_options, first.limit, first.label) == ("arith", {"max_steps": 4}, 7, "arith-4")
    assert (second.data_path, second.split, second.limit, second.label) == (gsm8k_file, "test", None, "gsm8k")
    save_config(tmp_path / "config.yaml", cfg)
    assert resolve(RunConfig, str(tmp_path / "config.yaml")) == cfg
    # a CLI item is the entry's YAML text
    assert resolve(RunConfig, None, {"eval.tasks": ["{task: gsm8k, limit: 5}"]}).eval.tasks[0].limit == 5


@pytest.mark.parametrize("tasks, needle", [
    ([{"task": "nope"}], "eval.tasks[0].task: unknown task 'nope'"),
    ([{"task": "arith"}, {"task": "rg:no_such_dataset"}], "eval.tasks[1].task:"),
    ([{"task": "gsm8k", "lmit": 3}], "unknown config key 'eval.tasks[0].lmit' (did you mean 'eval.tasks[0].limit'?)"),
    ([{"task": "arith", "task_options": {"zz": 1}}], "eval.tasks[0].task_options: unknown option(s) zz"),
    ([{"task": "arith", "limit": 0}], "eval.tasks[0].limit must be >= 1"),
    ([{"limit": 3}], "eval.tasks[0]: no task given"),
    ([{"task": "arith"}, {"task": "arith"}], "eval.tasks[1]: the name 'arith' is taken by tasks[0]"),
    ([{"task": "arith", "name": "a/b"}], "eval.tasks[0].name 'a/b'"),
    (["gsm8k"], "eval.tasks[0]: expected a mapping"),
    ({"task": "arith"}, "eval.tasks: expected a list"),
])
def test_bad_entries_are_one_line_config_errors(tasks, needle):
    with pytest.raises(ConfigError) as err:
        resolve(RunConfig, None, {"eval.tasks": tasks})
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("entry, needle", [
    ("{task: gsm8k, data_path: /no/such/file.jsonl}", "eval.tasks[0] (gsm8k):"),
    ("{task: arith, name: x, split: nosplit}", "eval.tasks[0] (x):"),
])
def test_bad_data_fails_in_the_preflight_before_any_work(entry, needle, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "--set", f"eval.tasks=[{entry}]", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rise: error:") and needle in err and "\n" not in err, err
    assert not out.exists()


def test_run_with_extra_tasks_reports_them_and_resumes_each_alone(tiny_model, tmp_path, capsys, gsm8k_file):
    pytest.importorskip("torch")
    from test_stale_stages import _run  # the stage-key tests' tiny `rise run`: one copy

    out = tmp_path / "r"
    ran, _ = _run(capsys, tiny_model, out)
    plain = {n: (out / "eval" / n).read_bytes() for n in ("report.md", "report.json")}
    assert "Out of distribution" not in plain["report.md"].decode()

    tasks = ("eval.tasks=[{task: arith, task_options: {max_steps: 2}, name: arith-2, limit: 2}, "
             f"{{task: gsm8k, data_path: {gsm8k_file}, limit: LIMIT}}]")
    ran, reused = _run(capsys, tiny_model, out, "--set", tasks.replace("LIMIT", "2"))
    # the main evaluation does not depend on the extra tasks: only they run
    assert ran == {"eval.arith-2", "eval.gsm8k"} and reused == {"iter1.collect", "iter1.train", "eval"}
    report = json.loads((out / "eval" / "report.json").read_text())
    assert set(report) == {"base", "rise-iter1"}
    for row in report.values():
        assert set(row["ood"]) == {"arith-2", "gsm8k"}
        assert row["ood"]["gsm8k"]["n"] == 2 and row["ood"]["gsm8k"]["meta"]["task"] == "gsm8k"
        assert {"m1@t1", "m2@t1", "p1@t2", "m1@t2"} <= set(row["ood"]["arith-2"])
    own = json.loads((out / "eval/ood/gsm8k/report.json").read_text())
    assert report["base"]["ood"]["gsm8k"]["m1@t1"] == own["base"]["m1@t1"]
    episodes = (out / "eval/ood/gsm8k/episodes.jsonl").read_text().splitlines()
    assert {json.loads(e)["problem_id"] for e in episodes} == {json.loads(e)["problem_id"] for e in episodes[:2]}
    md = (out / "eval" / "report.md").read_text()
    section = md[md.index("## Out of distribution"):md.index("## Legend")]
    assert "### arith-2" in section and "### gsm8k" in section and "`rise-iter1`" in section
    assert "| method | n | m1@t1 | m2@t1 | p2@t1 | m1@t2 | p1@t2 |" in section
    # the main table and everything above the section are those of the run without extra tasks
    assert md[:md.index("## Out of distribution")] == plain["report.md"].decode()[:md.index("## Out of distribution")]

    # unchanged: everything reused; one entry changed: only it runs again
    assert _run(capsys, tiny_model, out, "--set", tasks.replace("LIMIT", "2"))[0] == set()
    ran, reused = _run(capsys, tiny_model, out, "--set", tasks.replace("LIMIT", "3"))
    assert ran == {"eval.gsm8k"} and "eval.arith-2" in reused
    assert json.loads((out / "eval/report.json").read_text())["base"]["ood"]["gsm8k"]["n"] == 3
    # no extra tasks again: the section is gone, the report byte-identical to the first one's
    assert _run(capsys, tiny_model, out)[0] == set()
    assert {n: (out / "eval" / n).read_bytes() for n in plain} == plain


def test_rise_eval_takes_extra_tasks_too(tiny_model, tmp_path, capsys, gsm8k_file):
    pytest.importorskip("torch")
    out = tmp_path / "e"
    argv = ["eval", "--model", f"tiny={tiny_model}", "--out", str(out), "--threads", "1", "--quiet",
            "--limit", "2", "--turns", "2", "--parallel", "1", "--set", "sampling.max_new_tokens=8",
            "--tasks", f"{{task: gsm8k, data_path: {gsm8k_file}}}"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tiny"]["ood"]["gsm8k"]["n"] == 2  # the limit of the main evaluation
    assert "### gsm8k" in (out / "report.md").read_text()
    assert (out / "ood/gsm8k/episodes.jsonl").is_file() and not (out / "ood/gsm8k/chunks").exists()
