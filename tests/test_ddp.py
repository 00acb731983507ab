"""DDP for real: 2 CPU processes (gloo) end with the same weights as 1 process on the same global
batch, using `rise.train.fit` with an `accelerate.Accelerator`; and the micro-batch token budget
does not change the result.

The workers are this file run as a script (`python tests/test_ddp.py OUT CASE...`), launched as two
plain subprocesses with the environment `torchrun` would set (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR=127.0.0.1, a free MASTER_PORT); `Accelerator(cpu=True)` then makes a gloo process
group. Each process uses one torch thread.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

if __name__ != "__main__":
    import pytest

    torch = pytest.importorskip("torch")
    pytest.importorskip("accelerate")

TEXTS = ["Tom has 3 apples and buys 4 more. How many apples?", "3 + 4 = 7\n#### 7",
         "Sue had 12 pens and lost 5.", "12 - 5 = 7\n#### 7", "The answer is incorrect. Please try again.",
         "A box holds 6 rows of 8 eggs. How many eggs?", "6 * 8 = 48\n#### 48"]

LR = 3e-3
# name -> (batch_size, micro_batch_tokens, max_steps, lora). "odd": 7 examples over 2 processes
# (4 + 3); "one": batch 1, so the second process has no example at all in every step; "lora": peft
# adapters on every linear layer (only they are trained).
CASES = {
    "b8_budget1": (8, 1, 3, False),
    "b8_budget64": (8, 64, 3, False),
    "b8_budget10k": (8, 10_000, 3, False),
    "odd": (7, 64, 3, False),
    "one": (1, 10_000, 3, False),
    "lora": (8, 64, 3, True),
}


def examples() -> list[dict]:
    """Multi-turn examples of different lengths and weights (only the last turn is trained)."""
    q1 = [{"role": "user", "content": TEXTS[0]}]
    q2 = [{"role": "user", "content": TEXTS[2]}, {"role": "assistant", "content": "12 - 5 = 8\n#### 8"},
          {"role": "user", "content": TEXTS[4]}]
    q3 = [{"role": "user", "content": TEXTS[5]}, {"role": "assistant", "content": "6 + 8 = 14\n#### 14"},
          {"role": "user", "content": TEXTS[4] + " " + TEXTS[5]}]
    rows = [(q1, TEXTS[1], 12.18), (q2, TEXTS[3], 1.0), (q1, "#### 9", 0.082), (q3, TEXTS[6], 12.18),
            (q2, "12 - 5 = 7 so the answer is 7\n#### 7", 2.5), (q3, "#### 48", 0.5),
            (q1, "3 + 4 = 7. So Tom has 7 apples.\n#### 7", 1.0), (q3, "6 * 8 = 46\n#### 46", 0.082)]
    return [{"messages": [*conv, {"role": "assistant", "content": resp}], "weight": w} for conv, resp, w in rows]


def train_case(name: str, accelerator) -> tuple[dict, dict]:
    """Fresh seeded model trained with `fit` on CASES[name]: (state dict, stats)."""
    from rise.embedded import build_model, build_tokenizer
    from rise.train import TrainConfig, apply_lora, fit

    batch, budget, steps, lora = CASES[name]
    tok = build_tokenizer(TEXTS * 5, vocab_size=300)
    model = build_model(tok, size="tiny", seed=0)
    cfg = TrainConfig(lr=LR, batch_size=batch, micro_batch_tokens=budget, max_steps=steps,
                      warmup_ratio=0.0, grad_clip=1.0, seed=0, lora=lora, lora_r=4, lora_alpha=8)
    if lora:
        model = apply_lora(model, cfg)
    stats = fit(model, tok, examples(), cfg, progress=False, accelerator=accelerator)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, stats


def worker(out: str, names: list[str]) -> None:
    import torch
    from accelerate import Accelerator

    torch.set_num_threads(1)
    acc = Accelerator(cpu=True)
    results = {}
    for name in names:
        state, stats = train_case(name, acc)
        results[name] = {"state": state, "loss": stats["loss"], "grad_norm": stats["grad_norm"],
                         "world": acc.num_processes,
                         "backend": str(acc.state.backend)}
    if acc.is_main_process:
        torch.save(results, out)
    acc.wait_for_everyone()
    acc.end_training()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, out: Path, names: list[str], timeout: float = 120) -> dict:
    """Run `worker` in `world` processes; returns rank 0's results."""
    port = str(free_port())
    src = str(Path(__file__).resolve().parents[1] / "src")
    procs = []
    for rank in range(world):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "LOCAL_RANK",
                                                                         "WORLD_SIZE", "MASTER_"))}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
                   PYTHONPATH=src + os.pathsep + env.get("PYTHONPATH", ""))
        if world > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, __file__, str(out), *names], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, f"worker failed (exit {p.returncode}):\n{log[-4000:]}"
    import torch

    return torch.load(out, weights_only=False)


def assert_same_weights(got: dict, want: dict, name: str) -> None:
    """Equal within float tolerance. Adam divides each gradient by its own running RMS, so a
    parameter whose gradient is ~0 can move by a sizeable fraction of lr on rounding noise alone
    (reduction order differs between 1 and 2 processes, and between micro-batchings): the absolute
    tolerance is 3% of lr * steps; the mean difference must stay at rounding level."""
    steps = CASES[name][2]
    total, count = 0.0, 0
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=0.03 * LR * steps,
                                   msg=lambda m, k=k: f"{name} {k}: {m}")
        total += float((got[k] - want[k]).abs().sum())
        count += want[k].numel()
    assert total / count < 1e-7, f"{name}: mean weight difference {total / count:.2e}"


def test_two_gloo_processes_match_one_process(tmp_path):
    names = list(CASES)
    one = launch(1, tmp_path / "one.pt", names)
    two = launch(2, tmp_path / "two.pt", names)
    from rise.embedded import build_model, build_tokenizer

    init = build_model(build_tokenizer(TEXTS * 5, vocab_size=300), size="tiny", seed=0).state_dict()
    assert one["b8_budget1"]["world"] == 1
    assert two["b8_budget1"]["world"] == 2 and "gloo" in two["b8_budget1"]["backend"]
    for name in names:
        a, b = one[name]["state"], two[name]["state"]
        assert a.keys() == b.keys()
        if CASES[name][3]:  # LoRA: the B matrices start at 0
            moved = max(float(a[k].abs().max()) for k in a if "lora_B" in k)
        else:
            moved = max(float((a[k] - init[k]).abs().max()) for k in a)
        assert moved > 1e-3, f"{name}: training did not change the weights"
        assert_same_weights(b, a, name)
        # Adam hides a constant gradient factor; the loss and the (pre-clipping) gradient norm
        # of every step do not.
        assert two[name]["loss"] == pytest.approx(one[name]["loss"], rel=1e-5)
        assert two[name]["grad_norm"] == pytest.approx(one[name]["grad_norm"], rel=1e-4)
    # The micro-batch token budget changes how examples are grouped, not the result.
    for runs in (one, two):
        ref = runs["b8_budget10k"]["state"]
        for name in ("b8_budget1", "b8_budget64"):
            assert_same_weights(runs[name]["state"], ref, name)
            assert runs[name]["loss"] == pytest.approx(runs["b8_budget10k"]["loss"], rel=1e-5)
            assert runs[name]["grad_norm"] == pytest.approx(runs["b8_budget10k"]["grad_norm"], rel=1e-4)


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2:])
