"""Bad input: each gives one line naming the file and line (or the field) and exit status 2,
before any expensive work, with nothing half-written."""
import json

import pytest

from rise.cli import main

GOOD = {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"}


def rows(*recs):
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in recs) + "\n"


# name -> (file content, text the error must contain; {f} is the file path)
DATA_CASES = {
    "malformed line": (rows(GOOD, "{not json", GOOD), "{f}:2: malformed JSON"),
    "missing field": (rows(GOOD, {"question": "q"}), "{f}:2"),
    "empty question": (rows(GOOD, {"question": "  ", "answer": "#### 3"}), "{f}:2"),
    "unparseable gold": (rows(GOOD, {"question": "q?", "answer": "no final answer here"}), "{f}:2"),
    "duplicated id": (rows({**GOOD, "id": "a"}, {**GOOD, "question": "other?", "id": "a"}), "'a'"),
    "wrong type": (rows(GOOD, {"question": 5, "answer": "#### 5"}), "{f}:2"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_dataset_rows(case, tmp_path, capsys):
    content, needle = DATA_CASES[case]
    f = tmp_path / "data.jsonl"
    f.write_text(content)
    out = tmp_path / "out"
    # base points nowhere on purpose: the data must be checked first, before any model is touched
    rc = main(["run", "--base", "/no/model/here", "--task", "gsm8k", "--test_data", str(f), "--train_data", str(f),
               "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("rise: error:") and "\n" not in err
    assert needle.format(f=f) in err, err
    assert not out.exists()  # nothing half-written


ROLLOUT = {"problem_id": "p", "turn": 1, "messages": [{"role": "user", "content": "q"}],
           "action": {"text": "#### 1", "reward": 1.0}}

ROLLOUT_CASES = {
    "malformed": ("{oops", "{f}:1: malformed JSON"),
    "missing action": (json.dumps({k: v for k, v in ROLLOUT.items() if k != "action"}),
                       "{f}:1: missing field 'action'"),
    "turn as string": (json.dumps({**ROLLOUT, "turn": "1"}), "{f}:1: field 'turn' should be int"),
    "reward missing": (json.dumps({**ROLLOUT, "action": {"text": "x"}}), "{f}:1: field 'action.reward'"),
    "bad message": (json.dumps({**ROLLOUT, "messages": [{"role": "robot", "content": "x"}]}), "{f}:1: messages[0]"),
}


@pytest.mark.parametrize("case", list(ROLLOUT_CASES))
def test_bad_rollout_records(case, tmp_path, capsys):
    line, needle = ROLLOUT_CASES[case]
    f = tmp_path / "rollouts.jsonl"
    f.write_text(line + "\n")
    out = tmp_path / "train"
    rc = main(["train", "--model", "/no/model/here", "--rollouts", str(f), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle.format(f=f) in err and "\n" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("argv,needle", [
    (["run", "--task", "nosuchtask"], "nosuchtask"),
    (["run", "--base", "/no/such/dir", "--task", "arith"], "/no/such/dir"),
    (["run", "--set", "collect.samples=-1"], "samples must be >= 1"),
    (["run", "--set", "convert.tau=0"], "tau must be > 0"),
    (["run", "--set", "eval.sampling.temperature=-1"], "temperature"),
    (["run", "--set", "bogus.key=1"], "unknown config key 'bogus'"),
    (["train", "--model", "m", "--rollouts", "/no/file.jsonl"], "/no/file.jsonl: no such file"),
])
def test_bad_flags_and_paths(argv, needle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rise: error:") and needle in err and "\n" not in err, err
    assert not out.exists()


def test_overlapping_train_and_test_are_refused(tmp_path, capsys):
    f = tmp_path / "data.jsonl"
    f.write_text(rows(GOOD, {"question": "Sue has 5 pens. How many?", "answer": "#### 5"}))
    out = tmp_path / "out"
    rc = main(["run", "--base", "/no/model/here", "--task", "gsm8k", "--test_data", str(f), "--train_data", str(f),
               "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Tom has 3 apples" in err and "\n" not in err, err
    assert not out.exists()
