"""Issue 10.8: the smaller ones, each failing on the main it was filed against."""
import json

import pytest

from rise.cli import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("rise: error:") and "\n" not in err
    return err


def test_embedded_base_on_another_task_is_refused_naming_the_fix(tmp_path, capsys):
    train, test = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    train.write_text(json.dumps({"question": "What is 1+1?", "answer": "1+1=2\n#### 2"}) + "\n")
    test.write_text(json.dumps({"question": "What is 2+1?", "answer": "2+1=3\n#### 3"}) + "\n")
    out = tmp_path / "o"
    assert main(["run", "--task", "gsm8k", "--train_data", str(train), "--test_data", str(test),
                 "--out", str(out), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert "embedded base" in err and "--base" in err and "unknown option" not in err
    assert not out.exists()


def test_a_non_utf8_data_file_is_named(tmp_path, capsys):
    data = tmp_path / "latin1.jsonl"
    data.write_bytes(json.dumps({"question": "x", "answer": "#### 2"}).encode() + b"\n" +
                     '{"question": "caf\xe9", "answer": "#### 3"}\n'.encode("latin-1"))
    assert main(["eval", "--model", "m=/nowhere", "--task", "gsm8k", "--data_path", str(data),
                 "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert f"{data}:2" in err and "UTF-8" in err


def test_an_empty_data_file_fails_before_any_chunk(tmp_path, capsys):
    data = tmp_path / "empty.jsonl"
    data.write_text("\n")
    out = tmp_path / "o"
    assert main(["eval", "--model", "m=/nowhere", "--task", "gsm8k", "--data_path", str(data),
                 "--out", str(out), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert str(data) in err and "no problems" in err
    assert not (out / "chunks").exists()


def test_summary_header_has_each_metric_once(capsys):
    from rise.run import print_summary

    summary = {"m": {"K": 1, "T": 1, "m1@t1": 0.5, "p1@t1": 0.5, "turn_acc": [0.5]}}
    print_summary(summary, {}, __import__("pathlib").Path("e"))
    header = capsys.readouterr().out.strip().splitlines()[0].split()
    assert header.count("m1@t1") == 1 and header.count("p1@t1") == 1


@pytest.mark.parametrize("device,world,cuda,cpu", [
    ("cpu", "1", True, True), ("auto", "1", False, True), ("auto", "2", False, True),
    ("auto", "2", True, False), ("cuda", "2", False, False), ("auto", "1", True, False),
])
def test_training_under_a_launcher_without_gpu_joins_on_cpu(monkeypatch, device, world, cuda, cpu):
    torch = pytest.importorskip("torch")
    from rise.train import on_cpu

    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert on_cpu(device) is cpu


@pytest.mark.parametrize("fast_bf16, expected", [(True, "bfloat16"), (False, "float32")])
def test_cpu_training_really_autocasts_to_bf16(monkeypatch, tmp_path, fast_bf16, expected):
    """On a CPU-only machine with native bf16, the train stage's Accelerator runs the forward in
    bf16 (accelerate only autocasts on a CPU when told cpu=True); fp32 where the CPU lacks it."""
    torch = pytest.importorskip("torch")
    import rise.modeling
    from rise.train import TrainStageConfig, training_accelerator

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(rise.modeling, "cpu_has_fast_bf16", lambda: fast_bf16)
    acc = training_accelerator(TrainStageConfig(model="m", rollouts=["r"]), tmp_path)
    seen = []
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    net[1].register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    acc.prepare(net)(torch.randn(2, 4))
    assert seen == [getattr(torch, expected)]
