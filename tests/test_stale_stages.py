"""Issue 10.1: a stage is keyed on its config and the content of its inputs, so exactly the stages
downstream of a change re-run, and an unchanged re-run reuses everything."""
import json
import re

import pytest

pytest.importorskip("torch")

from rise.cli import main  # noqa: E402

SMALL = ["--threads", "1", "--quiet", "--set", "collect.limit=4", "--set", "collect.turns=2",
         "--set", "collect.sampling.max_new_tokens=8", "--set", "train.max_steps=1",
         "--set", "eval.limit=3", "--set", "eval.turns=2", "--set", "eval.parallel=2",
         "--set", "eval.sampling.max_new_tokens=8", "--set", "classic=false", "--set", "self_refine=false",
         "--set", "glore=false"]


def _run(capsys, base, out, *extra) -> tuple[set, set]:
    assert main(["run", "--base", base, "--out", str(out), *SMALL, *extra]) == 0
    text = capsys.readouterr().out
    ran = set(re.findall(r"\[rise\] (\S+) -> ", text))
    reused = set(re.findall(r"\[rise\] (\S+): reusing", text))
    return ran, reused


def test_exactly_the_stages_downstream_of_a_change_rerun(tiny_model, tmp_path, capsys):
    out = tmp_path / "s"
    ran, _ = _run(capsys, tiny_model, out)
    assert ran == {"iter1.collect", "iter1.train", "eval"}
    assert _run(capsys, tiny_model, out) == (set(), {"iter1.collect", "iter1.train", "eval"})
    # a new learning rate: a new checkpoint at the same path, so the evaluation must re-run
    ckpt = out / "iter1/train/checkpoint/model.safetensors"
    before = ckpt.read_bytes()
    assert _run(capsys, tiny_model, out, "--set", "train.lr=3e-2") == ({"iter1.train", "eval"}, {"iter1.collect"})
    assert ckpt.read_bytes() != before
    # fewer collection turns: new rollouts, so training and evaluation re-run too
    ran, reused = _run(capsys, tiny_model, out, "--set", "train.lr=3e-2", "--set", "collect.turns=1")
    assert ran == {"iter1.collect", "iter1.train", "eval"} and not reused
    examples = [json.loads(x) for x in (out / "iter1/train/examples.jsonl").read_text().splitlines()]
    assert {e["turn"] for e in examples} == {1}


def test_a_checkpoint_replaced_by_hand_is_evaluated_again(tiny_model, tmp_path, capsys):
    out = tmp_path / "s"
    _run(capsys, tiny_model, out)
    cfg = out / "iter1/train/checkpoint/config.json"
    cfg.write_text(cfg.read_text() + "\n")  # same config, same paths, different checkpoint bytes
    ran, reused = _run(capsys, tiny_model, out)
    assert ran == {"eval"} and reused == {"iter1.collect", "iter1.train"}


def test_another_version_of_rise_reuses_nothing(tiny_model, tmp_path, capsys, monkeypatch):
    """A stage made by other code (an upgrade, a local edit) is stale: its key holds rise's code."""
    import rise.resume

    out = tmp_path / "s"
    _run(capsys, tiny_model, out)
    monkeypatch.setattr(rise.resume, "code_fingerprint", lambda: "another-version")
    ran, reused = _run(capsys, tiny_model, out)
    assert ran == {"iter1.collect", "iter1.train", "eval"} and not reused


def test_code_fingerprint_follows_the_source(tmp_path, monkeypatch):
    import rise.resume

    fp = rise.resume.code_fingerprint()
    assert fp == rise.resume.code_fingerprint() and len(fp) == 16
    fake = tmp_path / "rise"
    fake.mkdir()
    (fake / "resume.py").write_text("x = 1\n")
    monkeypatch.setattr(rise.resume, "__file__", str(fake / "resume.py"))
    rise.resume.code_fingerprint.cache_clear()
    try:
        first = rise.resume.code_fingerprint()
        (fake / "resume.py").write_text("x = 2\n")
        rise.resume.code_fingerprint.cache_clear()
        assert rise.resume.code_fingerprint() not in (first, fp)
    finally:
        rise.resume.code_fingerprint.cache_clear()
