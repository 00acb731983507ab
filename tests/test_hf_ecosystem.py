"""rise's files are ordinary Hugging Face artifacts: rollouts, examples and episodes load with
`datasets.load_dataset("json", ...)` unchanged, examples.jsonl trains with TRL's SFTTrainer, and a
trained checkpoint loads with transformers' `from_pretrained`."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")

from rise.cli import main  # noqa: E402

SMALL = ["collect.limit=6", "collect.turns=2", "collect.sampling.max_new_tokens=16",
         "train.max_steps=2", "eval.limit=4", "eval.turns=2", "eval.parallel=2",
         "eval.sampling.max_new_tokens=16"]  # self-refine on: its turns carry a `critique`


@pytest.fixture(scope="module")
def tiny_run(tiny_model, tmp_path_factory):
    """One small `rise run` (about 2 s): every file kind rise writes, from the real pipeline."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    sets = [arg for kv in SMALL for arg in ("--set", kv)]
    assert main(["run", "--base", tiny_model, "--out", str(out), "--threads", "1", "--quiet",
                 *sets]) == 0
    return out


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", ["iter1/collect/rollouts.jsonl", "iter1/train/examples.jsonl",
                                  "classic/train/examples.jsonl", "eval/episodes.jsonl"])
def test_jsonl_round_trips_through_datasets(tiny_run, tmp_path, name):
    path = tiny_run / name
    rows = read_jsonl(path)
    ds = datasets.load_dataset("json", data_files=str(path), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert len(rows) > 0
    assert ds.to_list() == rows


def test_episodes_with_and_without_critiques_round_trip(tiny_run):
    """Self-Refine turns add a `critique` key that other models' turns lack; the rows still
    come back as written (no key added, none dropped)."""
    rows = read_jsonl(tiny_run / "eval/episodes.jsonl")
    kinds = {"critique" in turn for ep in rows for turn in ep["turns"]}
    assert kinds == {True, False}


def _sft_trainer(checkpoint, train_dataset, out_dir):
    trl = pytest.importorskip("trl")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = trl.SFTConfig(output_dir=str(out_dir), max_steps=1, per_device_train_batch_size=2,
                         learning_rate=1e-3, report_to="none", use_cpu=True, save_strategy="no",
                         logging_steps=1, max_length=512, disable_tqdm=True)
    return trl.SFTTrainer(model=AutoModelForCausalLM.from_pretrained(checkpoint), args=args,
                          train_dataset=train_dataset,
                          processing_class=AutoTokenizer.from_pretrained(checkpoint))


def _examples(tiny_run, tmp_path):
    return datasets.load_dataset("json", data_files=str(tiny_run / "iter1/train/examples.jsonl"),
                                 split="train", cache_dir=str(tmp_path / "cache"))


def test_examples_train_with_trl_sft_as_is(tiny_run, tmp_path):
    """examples.jsonl (messages + weight + bookkeeping columns) is TRL's conversational format
    as it is: one SFTTrainer step runs. TRL ignores `weight` and trains every token."""
    trainer = _sft_trainer(tiny_run / "iter1/train/checkpoint", _examples(tiny_run, tmp_path),
                           tmp_path / "trl")
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))


def test_examples_as_prompt_completion_train_the_last_turn_like_rise(tiny_run, tmp_path):
    """Mapped to TRL's prompt/completion format (the docs' recipe), SFTTrainer's loss covers the
    last assistant turn only, as `rise train` (train_on=last) does."""
    from rise.train import tokenize_example

    ds = _examples(tiny_run, tmp_path)
    pc = ds.map(lambda e: {"prompt": e["messages"][:-1], "completion": e["messages"][-1:]},
                remove_columns=["messages"])
    trainer = _sft_trainer(tiny_run / "iter1/train/checkpoint", pc, tmp_path / "trl")
    tok = trainer.processing_class
    multi_turn = 0
    for i, row in enumerate(trainer.train_dataset):
        messages = ds[i]["messages"]
        multi_turn += len(messages) > 2
        trl_text = tok.decode([t for t, lab in zip(row["input_ids"], row["labels"], strict=True)
                               if lab != -100])
        ids, mask = tokenize_example(tok, messages, "last")
        rise_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
        last = messages[-1]["content"]
        assert last in trl_text and last in rise_text
        assert messages[0]["content"] not in trl_text  # the question is context, not a target
    assert multi_turn > 0
    assert trainer.train().global_step == 1


@pytest.mark.parametrize("stage, title", [("iter1/train", "# RISE fine-tune"),
                                          ("classic/train", "# Classic SFT baseline of RISE")])
def test_checkpoint_has_a_model_card(tiny_run, stage, title):
    """README.md beside the weights: hub metadata, the data with counts and SHA-256, training
    measures from train_stats.json, and the resolved config (equal to the stage's config.yaml)."""
    import hashlib

    import yaml

    card = (tiny_run / stage / "checkpoint" / "README.md").read_text(encoding="utf-8")
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "transformers" and "rise" in meta["tags"]
    assert "base_model" not in meta  # a local base: the Hub's base_model must be a hub id
    assert title + "\n" in body
    rollouts = tiny_run / "iter1/collect/rollouts.jsonl"
    examples = tiny_run / stage / "examples.jsonl"
    for path in (rollouts, examples):
        data = path.read_bytes()
        records = len(data.splitlines())
        assert f"| {records} | `{hashlib.sha256(data).hexdigest()}` |" in body
    stats = json.loads((tiny_run / stage / "train_stats.json").read_text())
    assert f"| optimizer steps | {stats['steps']} |" in body
    assert f"/ {stats['final_loss']:.4f} |" in body
    assert "wall" not in body.lower()  # nothing that changes from run to run
    config = body.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(config) == yaml.safe_load((tiny_run / stage / "config.yaml").read_text())


def test_checkpoint_loads_with_from_pretrained_and_generates(tiny_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_run / "iter1/train/checkpoint"
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
