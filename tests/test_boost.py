"""The boost step (rise.boost): single-turn SFT of the base on reference solutions before RISE."""
import json

import pytest

from rise.boost import BoostConfig, boost_problems, boost_records
from rise.episodes import EpisodeConfig
from rise.errors import InputError
from rise.tasks import get_task


def test_boost_problems_are_the_ones_after_collections():
    task = get_task("arith")
    collected = task.load("train", limit=5)
    boost = boost_problems(task, "train", None, 5, 3)
    assert [p.id for p in boost] == [p.id for p in task.load("train", limit=8)[5:]]
    assert not {p.id for p in boost} & {p.id for p in collected}


def test_boost_records_are_single_turn_reference_actions():
    task = get_task("arith")
    probs = task.load("train", limit=3)
    recs = boost_records(task, probs, EpisodeConfig())
    assert [r["turn"] for r in recs] == [1, 1, 1]
    for r, p in zip(recs, probs, strict=True):
        assert r["action"]["text"] == p.solution and r["action"]["source"] == "reference"
        assert r["action"]["reward"] == 1.0  # the task's grader accepts its own references
        assert r["messages"] == EpisodeConfig().render(p.question, [])


def test_boost_conversion_is_single_turn_sft():
    from rise.convert import ConvertConfig, convert

    task = get_task("arith")
    recs = boost_records(task, task.load("train", limit=4), EpisodeConfig())
    recs[0]["action"] = {**recs[0]["action"], "reward": 0.0}  # a reference the grader rejected
    exs = convert(recs, ConvertConfig(mode="classic"))
    assert len(exs) == 3 and {e["weight"] for e in exs} == {1.0}
    assert all(e["messages"][-1]["role"] == "assistant" for e in exs)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(problems=-1), "boost.problems must be >= 0"),
    (dict(problems=3, epochs=0), "boost.epochs must be > 0"),
])
def test_bad_boost_config_is_one_line(kwargs, msg):
    with pytest.raises(InputError, match=msg):
        BoostConfig(**kwargs)


def test_too_few_boost_problems_names_the_file(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"}) + "\n"
                         for i in range(6)))
    task = get_task("gsm8k")
    with pytest.raises(InputError, match=r"boost.problems=5: .*train.jsonl has 2 problems after collection's 4"):
        boost_problems(task, "train", str(f), 4, 5)
    with pytest.raises(InputError, match="needs collect.limit"):
        boost_problems(task, "train", str(f), None, 5)


def test_rise_run_with_boost_trains_from_the_boosted_base(tiny_model, tmp_path, capsys):
    pytest.importorskip("torch")
    from test_stale_stages import _run

    out = tmp_path / "b"
    ran, _ = _run(capsys, tiny_model, out, "--set", "boost.problems=3", "--set", "boost.epochs=1")
    assert ran == {"boost.data", "boost.train", "iter1.collect", "iter1.train", "eval"}
    boosted = str(out / "boost/train/checkpoint")
    from rise.config import load_yaml

    assert load_yaml(out / "iter1/collect/config.yaml")["policy"] == boosted
    assert load_yaml(out / "eval/config.yaml")["models"]["base"] == boosted
    rollouts = [json.loads(x) for x in (out / "boost/data/rollouts.jsonl").read_text().splitlines()]
    collected = {json.loads(x)["problem_id"] for x in (out / "iter1/collect/rollouts.jsonl").read_text().splitlines()}
    assert len(rollouts) == 3 and not {r["problem_id"] for r in rollouts} & collected
    assert "after the boost step" in (out / "eval/report.md").read_text()
    # a new boost size re-runs everything downstream of the base
    ran, _ = _run(capsys, tiny_model, out, "--set", "boost.problems=2", "--set", "boost.epochs=1")
    assert ran == {"boost.data", "boost.train", "iter1.collect", "iter1.train", "eval"}
