"""Crash safety and determinism: a run killed with SIGKILL and started again ends with the same
records and report as an uninterrupted run with the same seed; two runs are byte-identical."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

ARTIFACTS = ("iter1/collect/rollouts.jsonl", "iter1/train/examples.jsonl", "eval/episodes.jsonl",
             "eval/report.json", "classic/train/examples.jsonl", "glore/train/examples.jsonl")


def argv(model, out):
    sets = ["collect.limit=8", "collect.turns=2", "collect.chunk_size=2", "collect.sampling.max_new_tokens=24",
            "train.max_steps=6", "train.batch_size=2", "train.save_every=2",
            "eval.limit=6", "eval.turns=2", "eval.parallel=2",
            "eval.chunk_size=2", "eval.sampling.max_new_tokens=24"]
    return [sys.executable, "-m", "rise.cli", "run", "--base", model, "--out", str(out), "--threads", "1",
            "--quiet", *[x for s in sets for x in ("--set", s)]]


def run_to_end(model, out):
    subprocess.run(argv(model, out), check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def kill_when(model, out, marker: str, timeout=120.0):
    """Start the real CLI, SIGKILL it as soon as `marker` (a glob under out) exists."""
    proc = subprocess.Popen(argv(model, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            if list(Path(out).glob(marker)):
                proc.send_signal(signal.SIGKILL)
                return proc.wait() == -signal.SIGKILL  # False: it had exited on its own first
            if proc.poll() is not None:
                return False  # finished before the marker: nothing was interrupted
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    raise AssertionError(f"{marker} never appeared")


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    run_to_end(tiny_model, out)
    return out


def test_same_seed_is_byte_identical(tiny_model, reference, tmp_path):
    out = tmp_path / "again"
    run_to_end(tiny_model, out)
    for f in ARTIFACTS:
        assert (out / f).read_bytes() == (reference / f).read_bytes(), f
    a = (out / "iter1/train/checkpoint/model.safetensors").read_bytes()
    assert a == (reference / "iter1/train/checkpoint/model.safetensors").read_bytes()


@pytest.mark.parametrize("marker", [
    "iter1/collect/chunks/rollouts-00000.jsonl",   # collect, after its first chunk
    "iter1/collect/done.json",                     # between collect and train
    "iter1/train/examples.jsonl",                  # train, before the first step
    "iter1/train/train_state/progress.json",       # train, mid-way (resumes from step 2 or 4)
    "classic/train/examples.jsonl",                # the classic baseline's training
    "eval/chunks/base-00001.jsonl",                # eval, mid-model
    "eval/chunks/rise-iter1-00000.jsonl",          # eval, second model
    "eval/chunks/glore-refiner-00000.jsonl",       # eval, the refiner row (continues the base's chains)
])
def test_sigkill_then_restart_equals_uninterrupted(tiny_model, reference, tmp_path, marker):
    out = tmp_path / "killed"
    killed = kill_when(tiny_model, out, marker)
    # the test means something only if the run really died there, before its report
    assert killed, f"the run was not killed at {marker}"
    assert not (out / "eval" / "report.json").exists() and not (out / "timings.json").exists()
    run_to_end(tiny_model, out)
    for f in ARTIFACTS:
        assert (out / f).read_bytes() == (reference / f).read_bytes(), f"{f} differs after a kill at {marker}"
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
