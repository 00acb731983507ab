"""Integration: collect -> train -> eval through the real CLI, on a tiny model, in seconds."""
import json

import pytest

torch = pytest.importorskip("torch")

from rise.cli import main  # noqa: E402

TINY = ["--threads", "1", "--quiet"]


def small(prefix=""):
    return [
        "--set", f"{prefix}collect.limit=6", "--set", f"{prefix}collect.turns=2",
        "--set", f"{prefix}collect.sampling.max_new_tokens=16", "--set", f"{prefix}train.max_steps=2",
        "--set", f"{prefix}eval.limit=4", "--set", f"{prefix}eval.turns=3", "--set", f"{prefix}eval.parallel=2",
        "--set", f"{prefix}eval.sampling.max_new_tokens=16",
    ]


def test_run_end_to_end_and_resume(tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    probe = ["--set", "nll_probe=4", "--set", "train.eval_every=1"]
    assert main(["run", "--base", tiny_model, "--out", str(out), *TINY, *small(), *probe]) == 0
    report = json.loads((out / "eval" / "report.json").read_text())
    assert set(report) == {"base", "base+self-refine", "classic-sft", "rise-iter1", "glore-refiner"}
    for metrics in report.values():
        for key in ("m1@t1", "m2@t1", "p2@t1", "m1@t3", "p1@t3"):
            assert 0.0 <= metrics[key] <= 1.0
        assert len(metrics["turn_acc"]) == 3
        assert metrics["meta"]["episode"] == {"preset": "default", "feedback": "incorrect", "history": 1}
    classic = [json.loads(x) for x in (out / "classic/train/examples.jsonl").read_text().splitlines()]
    assert all(len(e["messages"]) == 2 and e["weight"] == 1.0 for e in classic)  # single-turn SFT
    sr = [json.loads(x) for x in (out / "eval/episodes.jsonl").read_text().splitlines() if '"base+self-refine"' in x]
    assert sr and all("critique" in ep["turns"][0] for ep in sr)
    assert all(ep["question"] for ep in sr)  # transcripts show the question
    # GLoRE-style refiner: the base's turn 1 and parallel samples, the refiner's later turns,
    # trained on (wrong attempt in context -> right action) examples of turn 2 only
    eps = [json.loads(x) for x in (out / "eval/episodes.jsonl").read_text().splitlines()]
    base_eps = {e["problem_id"]: e for e in eps if e["model"] == "base"}
    glore = [e for e in eps if e["model"] == "glore-refiner"]
    assert len(glore) == len(base_eps) and all(len(e["turns"]) == 3 for e in glore)
    for e in glore:
        own = base_eps[e["problem_id"]]
        assert e["parallel"] == own["parallel"] and e["turns"][0] == own["turns"][0]
    assert report["glore-refiner"]["m1@t1"] == report["base"]["m1@t1"]
    for e in sr:   # Self-Refine reuses its model's turn 1 (the same draws, not drawn again)
        own = base_eps[e["problem_id"]]
        assert e["parallel"] == own["parallel"] and e["turns"][0]["text"] == own["turns"][0]["text"]
    assert report["base+self-refine"]["m1@t1"] == report["base"]["m1@t1"]
    refiner_data = [json.loads(x) for x in (out / "glore/train/examples.jsonl").read_text().splitlines()]
    assert refiner_data and all(e["turn"] == 2 and e["reward"] == 1.0 and len(e["messages"]) == 4 for e in refiner_data)
    assert set(report["rise-iter1"]["analyses"]["beyond_reference"]) == {"1", "2"}  # eval.analyses on in rise run
    for f in ("iter1/collect/rollouts.jsonl", "iter1/collect/config.yaml", "iter1/train/examples.jsonl",
              "iter1/train/checkpoint/model.safetensors", "iter1/train/config.yaml", "eval/episodes.jsonl",
              "eval/report.md", "eval/accuracy_by_turn.png", "eval/flows_by_turn.png", "eval/analyses.png",
              "config.yaml", "timings.json",
              "probe/alone.jsonl", "probe/multi_turn.jsonl", "probe/nll_over_training.png"):
        assert (out / f).is_file(), f
    # the NLL probe (analysis (a)) is scored at every step of both trainings, from the same start
    curves = json.loads((out / "probe/nll_over_training.json").read_text())
    assert set(curves) == {"rise-iter1", "classic-sft"}
    for c in curves.values():
        assert c["step"] == [0, 1, 2] and len(c["alone"]) == len(c["multi_turn"]) == 3
    assert curves["rise-iter1"]["alone"][0] == curves["classic-sft"]["alone"][0]
    rollouts = [json.loads(x) for x in (out / "iter1/collect/rollouts.jsonl").read_text().splitlines()]
    assert {r["turn"] for r in rollouts} <= {1, 2}
    # a failed turn-1 state is followed by a turn-2 state whose candidates include the reference
    turn2 = [r for r in rollouts if r["turn"] == 2]
    assert all(any(c["source"] == "reference" for c in r["candidates"]) for r in turn2)
    examples = [json.loads(x) for x in (out / "iter1/train/examples.jsonl").read_text().splitlines()]
    assert len(examples) == len(rollouts)  # criterion `all`: one example per turn
    assert all(e["messages"][-1]["role"] == "assistant" for e in examples)
    capsys.readouterr()
    # a second run reuses every finished stage and reproduces the report
    assert main(["run", "--base", tiny_model, "--out", str(out), *TINY, *small(), *probe]) == 0
    assert "reusing" in capsys.readouterr().out
    assert json.loads((out / "eval" / "report.json").read_text()) == report


def test_stage_commands(tiny_model, tmp_path):
    col, tr, ev = tmp_path / "collect", tmp_path / "train", tmp_path / "eval"
    assert main(["collect", "--policy", tiny_model, "--limit", "4", "--turns", "2", "--improve", "self",
                 "--best_of", "2", "--sampling.max_new_tokens", "12", "--out", str(col), *TINY]) == 0
    recs = [json.loads(x) for x in (col / "rollouts.jsonl").read_text().splitlines()]
    assert any(c["source"] == "self@2" for r in recs for c in r["candidates"])
    assert main(["train", "--model", tiny_model, "--rollouts", str(col / "rollouts.jsonl"),
                 "--train.max_steps", "1", "--train.lora", "true", "--out", str(tr), *TINY]) == 0
    assert (tr / "adapter" / "adapter_config.json").is_file() and (tr / "checkpoint" / "config.json").is_file()
    assert main(["eval", "--model", f"tuned={tr / 'checkpoint'}", "--limit", "3", "--turns", "2",
                 "--parallel", "2", "--sampling.max_new_tokens", "12", "--out", str(ev), *TINY]) == 0
    assert set(json.loads((ev / "report.json").read_text())) == {"tuned"}


@pytest.mark.parametrize("argv,needle", [
    (["run", "--set", "train.lrr=1"], "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
    (["collect", "--turns", "0", "--policy", "x"], "turns must be >= 1"),
    (["eval", "--limit", "2"], "eval.models: no model to evaluate"),
    (["run", "--config", "/nonexistent.yaml"], "config file not found"),
    (["collect", "--policy", "/no/such/model", "--limit", "1"], "/no/such/model"),
])
def test_bad_input_is_one_line_naming_the_culprit(argv, needle, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rise: error:") and needle in err and "\n" not in err


def test_teacher_distillation_records_provenance(tiny_model, tmp_path):
    col = tmp_path / "collect"
    assert main(["collect", "--policy", tiny_model, "--teacher", tiny_model, "--improve", "teacher",
                 "--improve_first_turn", "true", "--best_of", "2", "--limit", "3", "--turns", "1",
                 "--sampling.max_new_tokens", "8", "--out", str(col), *TINY]) == 0
    recs = [json.loads(x) for x in (col / "rollouts.jsonl").read_text().splitlines()]
    sources = {c["source"] for r in recs for c in r["candidates"]}
    assert f"teacher:hf:{tiny_model}" in sources and "policy" in sources


def test_sharded_collect_then_merge_equals_one_process(tiny_model, tmp_path):
    args = ["--policy", tiny_model, "--limit", "6", "--turns", "2", "--chunk_size", "2",
            "--sampling.max_new_tokens", "8", *TINY]
    assert main(["collect", *args, "--out", str(tmp_path / "one")]) == 0
    for k in range(3):
        shard = ["--num_shards", "3", "--shard_index", str(k), "--out", str(tmp_path / "sh")]
        assert main(["collect", *args, *shard]) == 0
    assert not (tmp_path / "sh" / "rollouts.jsonl").exists()
    assert main(["collect", *args, "--out", str(tmp_path / "sh")]) == 0   # merge: loads no model
    assert (tmp_path / "sh" / "rollouts.jsonl").read_bytes() == (tmp_path / "one" / "rollouts.jsonl").read_bytes()
