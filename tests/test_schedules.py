"""Issue 15.3: the official collection schedules (per-turn sample counts, models, temperatures)
and rollouts of one model training another inside `rise run`."""
import json

import pytest
import yaml

from rise.collect import CollectConfig, rollouts
from rise.config import ConfigError, resolve
from rise.tasks import get_task


@pytest.mark.parametrize("key,value,needle", [
    ("samples", [1, 16, 2], "collect.samples has 3 values for collect.turns=2"),
    ("samples", [1, 0], "collect.samples must be >= 1 at every turn, got 0"),
    ("temperature", [0.7, -1.0], "collect.temperature must be >= 0 at every turn"),
    ("turn_models", ["policy", "a", "b"], "collect.turn_models has 3 values"),
    ("turn_models", ["policy", ""], "collect.turn_models must be a model name"),
    ("samples", "many", "samples: expected an integer"),
])
def test_bad_schedules_name_the_key(key, value, needle):
    with pytest.raises(ConfigError, match=needle):
        resolve(CollectConfig, None, {"turns": 2, key: value})


@pytest.mark.parametrize("settings,expect", [
    # (samples, temperature, turn_models) -> per turn (samples, temperature, model)
    ({}, [(1, 1.0, "P"), (1, 1.0, "P")]),
    ({"samples": [1, 16]}, [(1, 1.0, "P"), (16, 1.0, "P")]),             # official --num_of_samples 1 16
    ({"samples": 4, "temperature": 0.7}, [(4, 0.7, "P"), (4, 0.7, "P")]),  # a scalar: every turn
    ({"samples": [3], "temperature": [0.0, 0.7]}, [(3, 0.0, "P"), (3, 0.7, "P")]),
    ({"turn_models": ["policy", "TEACHER"]}, [(1, 1.0, "P"), (1, 1.0, "TEACHER")]),  # official --models A B
])
def test_per_turn_values(settings, expect):
    cfg = resolve(CollectConfig, None, {"turns": 2, "policy": "P", **settings})
    got = [(cfg.samples_at(t), cfg.sampling_at(t).temperature, cfg.model_at(t)) for t in (1, 2)]
    assert got == expect


def test_cli_takes_one_value_per_turn():
    from rise.cli import _overrides, build_parser

    args = build_parser().parse_args(["collect", "--turns", "2", "--samples", "1", "16",
                                      "--turn_models", "policy", "T", "--temperature", "0.7"])
    cfg = resolve(CollectConfig, None, _overrides(args))
    assert (cfg.samples, cfg.turn_models, cfg.temperature) == ([1, 16], ["policy", "T"], [0.7])


class Recorder:
    """A backend that answers every prompt with a fixed text and records each call."""

    def __init__(self, text):
        self.text, self.calls = text, []

    def generate(self, convs, n, params, seed):
        self.calls.append((len(convs), n, params.temperature))
        return [[self.text] * n for _ in convs]


def test_rollouts_follow_the_schedule():
    task = get_task("arith")
    problems = task.load("train", limit=3)
    cfg = CollectConfig(policy="P", turns=3, samples=[1, 4, 2], temperature=[1.0, 0.7, 0.5],
                        turn_models=["policy", "TEACHER", "policy"], improve="none")
    policy, teacher = Recorder("no idea"), Recorder("still no idea")
    recs = rollouts(cfg, task, problems, policy, others={"TEACHER": teacher})
    assert policy.calls == [(3, 1, 1.0), (3, 2, 0.5)] and teacher.calls == [(3, 4, 0.7)]
    turn2 = [r for r in recs if r["turn"] == 2]
    assert all(len(r["candidates"]) == 4 and {c["source"] for c in r["candidates"]} == {"model:hf:TEACHER"}
               for r in turn2)
    assert all(r["next"]["text"] == "still no idea" for r in turn2)  # turn 3 continues from the teacher's sample


@pytest.fixture(scope="module")
def other_tiny_model(tmp_path_factory):
    """A second tiny model (another seed, the same tokenizer): the student of a transfer run."""
    pytest.importorskip("torch")
    from rise.embedded import build_model, build_tokenizer
    from rise.modeling import save_model

    probs = get_task("arith").load("train", limit=200)
    tok = build_tokenizer([p.question for p in probs] + [p.solution for p in probs], vocab_size=400)
    path = tmp_path_factory.mktemp("models") / "student"
    save_model(build_model(tok, size="tiny", seed=1), tok, path)
    return str(path)


def test_run_trains_a_student_on_the_base_rollouts_with_a_turn_model(tiny_model, other_tiny_model, tmp_path):
    from rise.cli import main

    out = tmp_path / "run"
    sets = ["collect.limit=4", "collect.turns=2", "collect.sampling.max_new_tokens=8", "train.max_steps=1",
            "eval.limit=3", "eval.turns=2", "eval.parallel=2", "eval.sampling.max_new_tokens=8",
            "classic=false", "self_refine=false", "glore=false", "collect.samples=[1, 2]",
            f"collect.turn_models=[policy, {other_tiny_model}]", "collect.temperature=[1.0, 0.7]"]
    argv = ["run", "--base", tiny_model, "--student", other_tiny_model, "--out", str(out), "--threads", "1",
            "--quiet", *[x for s in sets for x in ("--set", s)]]
    assert main(argv) == 0
    report = json.loads((out / "eval/report.json").read_text())
    assert set(report) == {"base", "student", "rise-iter1"}  # the student also untrained

    assert yaml.safe_load((out / "iter1/train/config.yaml").read_text())["model"] == other_tiny_model
    recs = [json.loads(x) for x in (out / "iter1/collect/rollouts.jsonl").read_text().splitlines()]
    turn2 = [r for r in recs if r["turn"] == 2]
    assert turn2 and all(sum(c["source"].startswith("model:") for c in r["candidates"]) == 2 for r in turn2)
    md = (out / "eval/report.md").read_text()
    assert (f"Iteration 1's data: rolled out by `base` (turn 1: `base` x1 at T=1; turn 2: `{other_tiny_model}` x2 "
            "at T=0.7; improved responses: reference); trained: `student` -> `rise-iter1`.") in md


def test_collection_note_merges_equal_turns():
    from rise.run import collection_note

    col = CollectConfig(policy="P", turns=5, samples=[1, 1, 1, 16, 16])
    assert collection_note(col, 2, "rise-iter1", "rise-iter1") == (
        "Iteration 2's data: rolled out by `rise-iter1` (turns 1-3: `rise-iter1` x1 at T=1; turns 4-5: "
        "`rise-iter1` x16 at T=1; improved responses: reference); trained: `rise-iter1` -> `rise-iter2`.")
