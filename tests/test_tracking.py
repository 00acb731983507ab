"""train.report_to: accelerate's trackers log loss, lr, grad norm and tokens/s at each logging
step (TensorBoard event files read back here); names are checked when the config is built."""
from __future__ import annotations

import json

import pytest

from rise.errors import InputError
from rise.tracking import flat_config, parse_report_to

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("value, want", [("none", []), ("", []), ("tensorboard", ["tensorboard"]),
                                         (" TensorBoard ", ["tensorboard"])])
def test_report_to_names(value, want):
    pytest.importorskip("tensorboard")
    assert parse_report_to(value) == want


def test_unknown_tracker_is_refused_when_the_config_is_built():
    from rise.train import TrainConfig

    with pytest.raises(InputError, match="train.report_to: unknown tracker 'tensorbord'"):
        TrainConfig(report_to="tensorbord")


def test_tracker_without_its_package_names_the_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(InputError, match="report_to=wandb needs the wandb package: pip install wandb"):
        parse_report_to("tensorboard,wandb")


def test_flat_config_keeps_only_scalar_types():
    flat = flat_config({"a": {"b": 1, "c": None, "d": [1, 2]}, "e": {}, "f": "x", "g": True})
    assert flat == {"a.b": 1, "a.c": "None", "a.d": "[1, 2]", "e": "{}", "f": "x", "g": True}


def test_tensorboard_event_files_hold_every_logging_step(tiny_model, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rise.cli import main

    torch.set_num_threads(1)
    quiet = ["--threads", "1", "--quiet"]
    assert main(["collect", "--policy", tiny_model, "--limit", "4", "--turns", "2",
                 "--sampling.max_new_tokens", "12", "--out", str(tmp_path / "c"), *quiet]) == 0
    out = tmp_path / "t"
    assert main(["train", "--model", tiny_model, "--rollouts", str(tmp_path / "c/rollouts.jsonl"),
                 "--train.max_steps", "3", "--train.batch_size", "2", "--train.log_every", "1",
                 "--train.report_to", "tensorboard", "--out", str(out), *quiet]) == 0
    stats = json.loads((out / "train_stats.json").read_text())
    events = sorted((out / "logs").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file under logs/"
    scalars = {}
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = acc.Scalars(tag)
    assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s"} <= set(scalars)
    assert [e.step for e in scalars["train/loss"]] == [1, 2, 3]
    assert [e.value for e in scalars["train/loss"]] == pytest.approx(stats["loss"], rel=1e-6)
    assert [e.value for e in scalars["train/grad_norm"]] == pytest.approx(stats["grad_norm"], rel=1e-6)
    assert all(e.value > 0 for e in scalars["train/tokens_per_s"])


def test_no_tracker_writes_no_logs(tiny_model, tmp_path):
    from rise.cli import main

    torch.set_num_threads(1)
    quiet = ["--threads", "1", "--quiet"]
    assert main(["collect", "--policy", tiny_model, "--limit", "2", "--turns", "1",
                 "--sampling.max_new_tokens", "8", "--out", str(tmp_path / "c"), *quiet]) == 0
    assert main(["train", "--model", tiny_model, "--rollouts", str(tmp_path / "c/rollouts.jsonl"),
                 "--train.max_steps", "1", "--out", str(tmp_path / "t"), *quiet]) == 0
    assert not (tmp_path / "t" / "logs").exists()
