#!/usr/bin/env python
"""Trainer throughput: `rise.train.fit` against the official RISE recipe, same model and data.

    python bench/trainer.py                       # embedded default model, CPU (< 5 min)
    python bench/trainer.py --gpu-size 0.5b       # random Qwen2-0.5B-shaped model, bf16, GPU

ours      `rise.train.fit`: examples grouped by length into micro-batches under a token budget
          (`--budget`, padded tokens per forward), the LM head and the loss only at the trained
          (last-turn) positions.
official  the official FastChat recipe, re-implemented here: every example right-padded to
          `--pad-to` tokens (2048), micro-batch 1, full-vocabulary logits at every position
          (`model(...).logits`), per-example loss = mean NLL over the target tokens x weight,
          gradient accumulation `--accum` (16) with the loss divided by it, AdamW, clipping 1.0.

Both run the same global batches (`rise.train.global_batches`), learning rates and optimizer
from the same initial weights, so their per-step losses must agree (printed side by side; the
difference is float rounding: padded and unpadded shapes reduce in a different order, and from
the second step on Adam's normalisation amplifies it a little). Tokens/s counts real (non-pad)
tokens. Peak memory: the process RSS sampled every 2 ms on a CPU (it includes the Python
process, torch and the data), `torch.cuda.max_memory_allocated` on a GPU. MFU (GPU) counts the
same model FLOPs per real token for both recipes (see `flops_per_sequence`).

Data: realistic RISE examples (`rise_examples`): arith problems rendered with the official
(`paper`) prompt preset and context window, turns 1-5, targets right / wrong / unparseable with
their RWR weights. The last line reads
`trainer: 4.1x the official recipe (12,345 vs 3,010 tokens/s, peak 1.2 GB)` (peak: ours).
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# A Qwen2-0.5B-shaped model (the config of Qwen/Qwen2-0.5B), randomly initialised: nothing is
# fetched, so it runs on a machine without network.
QWEN2_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, rope_theta=1_000_000.0,
                 rms_norm_eps=1e-6, max_position_embeddings=32768)

# Dense bf16 peak (FLOP/s) of the accelerators this project may borrow, for MFU; PEAK_TFLOPS
# in the environment overrides.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


# ------------------------------------------------------------------ data and models

def arith_problems(n: int, seed: int = 0):
    """(task, n arith training problems, wrong(problem) -> a plausible wrong worked solution)."""
    from rise.tasks import get_task

    task = get_task("arith")
    probs = task.load("train", limit=n)
    rng = random.Random(seed)

    def wrong(p):
        if hasattr(task, "corrupt_solution"):
            try:
                return task.corrupt_solution(p, rng)
            except Exception:
                pass
        head, _, ans = p.solution.rpartition("#### ")
        ans = ans.strip()
        return f"{head}#### {int(ans) + rng.choice([-2, -1, 1, 2]) if ans.lstrip('-').isdigit() else 0}"

    return task, probs, wrong


def rise_examples(n: int, preset: str = "paper", seed: int = 0, tau: float = 0.4) -> list[dict]:
    """n weighted training examples shaped like one RISE iteration's `examples.jsonl`.

    Each is turn t of a rollout (t = 1 for ~45%, else 2..5), rendered with
    `rise.episodes.render_state` (official context window: the question plus the last attempt and
    its feedback); the target is the reference solution (reward 1, weight exp(1/tau) = 12.18), a
    wrong attempt (0, weight 1) or an unparseable one (-1, weight 0.082), as distillation data
    with wrong turns kept holds all three.
    """
    from rise.episodes import Attempt, render_state, with_response
    from rise.prompts import get_preset

    task, probs, wrong = arith_problems(n, seed)
    rng = random.Random(seed + 1)
    pre = get_preset(preset)
    out = []
    for p in probs:
        turn = 1 if rng.random() < 0.45 else rng.randint(2, 5)
        attempts = []
        for _ in range(turn - 1):
            text = wrong(p)
            attempts.append(Attempt(text, task.extract_answer(text), 0.0))
        u = rng.random()
        if u < 0.6:
            target, reward = p.solution, 1.0
        elif u < 0.9:
            target, reward = wrong(p), 0.0
        else:
            target, reward = p.solution.rpartition("####")[0].rstrip() or "I am not sure.", -1.0
        msgs = render_state(p.question, attempts, pre, "incorrect", history=1)
        out.append({"messages": with_response(msgs, target), "weight": math.exp(reward / tau),
                    "reward": reward, "problem_id": p.id, "turn": turn, "source": "reference"})
    return out


def tokenizer_for(texts: list[str], vocab_size: int = 1024):
    """The embedded default's byte-level BPE tokenizer, fitted on `texts`."""
    from rise.embedded import build_tokenizer

    return build_tokenizer(texts, vocab_size=vocab_size)


def example_texts(examples: list[dict]) -> list[str]:
    return [m["content"] for ex in examples for m in ex["messages"]]


def build_lm(tok, size: str = "default", gpu_size: str | None = None, max_positions: int = 4096, seed: int = 0,
             layers: int | None = None):
    """The embedded model of `size` (float32, `rise.embedded` shape), or with gpu_size='0.5b' a
    randomly initialised Qwen2-0.5B-shaped model in bf16. `layers` overrides the depth (to
    smoke-test the GPU shape on a CPU)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rise.embedded import model_config

    if gpu_size:
        if gpu_size.lower() != "0.5b":
            raise SystemExit(f"--gpu-size: only 0.5b is known, got {gpu_size!r}")
        cfg = Qwen2Config(**QWEN2_05B, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                          bos_token_id=None, use_sliding_window=False, attention_dropout=0.0)
        dtype = torch.bfloat16
    else:
        cfg = model_config(tok, size, max_position_embeddings=max_positions)
        dtype = torch.float32
    if layers:
        cfg.num_hidden_layers = layers
        if getattr(cfg, "layer_types", None):
            cfg.layer_types = cfg.layer_types[:layers]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg).to(dtype)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = None
    return model


# ------------------------------------------------------------------ accounting

def flops_per_sequence(cfg, n: int) -> float:
    """Model FLOPs of forward + backward on one sequence of n real tokens: 6 per matmul weight per
    token (decoder linear layers, and the LM head at every position, as a standard LM counts it)
    + causal attention 6 * layers * hidden * n^2 (QK^T and AV). The same count for both recipes:
    the work of a standard training step on the real tokens, not what each recipe executed."""
    h, layers, inter = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter  # q, o; k, v; gate, up, down
    return 6.0 * (layers * per_layer + h * cfg.vocab_size) * n + 6.0 * layers * h * n * n


def peak_flops(device) -> float | None:
    import torch

    if os.environ.get("PEAK_TFLOPS"):
        return float(os.environ["PEAK_TFLOPS"]) * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


class PeakMemory:
    """Peak memory inside a `with` block: `torch.cuda.max_memory_allocated` on a GPU; on a CPU the
    process RSS sampled every 2 ms by a thread (psutil; ru_maxrss cannot be reset, tracemalloc
    does not see torch's allocations)."""

    def __init__(self, device):
        self.device = device
        self.peak = self.start = 0

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        import gc

        import psutil

        gc.collect()
        trim_heap()
        proc = psutil.Process()
        self.start = self.peak = proc.memory_info().rss
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, proc.memory_info().rss)
                time.sleep(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __str__(self) -> str:
        what = "allocated" if self.device.type == "cuda" else "RSS"
        return f"{gb(self.peak)} {what} (+{gb(max(0, self.peak - self.start))} over the start of the run)"

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
        return False


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc), so the RSS of one phase does not carry the
    previous phase's high-water mark."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e9:.2f} GB"


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ the official recipe

def official_recipe(model, encoded, batches, cfg, total_steps: int, pad_to: int, accum: int, pad_id: int,
                    device, bf16=False) -> dict:
    """Train `model` on `batches` (lists of indices into `encoded`) the official way; per-step
    losses, wall time and token counts.

    FastChat's `CustomTrainer.compute_loss`: logits of the whole padded sequence, token NLL with
    the non-target positions ignored, mean over the example's target tokens times its weight
    (micro-batch 1, so the "average over the micro-batch" is that one value); the HF Trainer
    divides by the accumulation steps and steps every `accum` examples. Logits are upcast to
    float32 for the loss, as transformers' own causal-LM loss does.
    """
    import torch
    import torch.nn.functional as F

    from rise.train import lr_at

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    losses, real, padded = [], 0, 0
    sync(device)
    t0 = time.perf_counter()
    for step, batch in enumerate(batches):
        if len(batch) != accum:
            raise ValueError(f"a global batch of {len(batch)} examples, not --accum {accum}")
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total_steps, cfg)
        step_loss = torch.zeros((), device=device)
        for i in batch:
            e = encoded[i]
            n = len(e.input_ids)
            ids = torch.full((1, pad_to), pad_id, dtype=torch.long)
            ids[0, :n] = torch.tensor(e.input_ids)
            attn = torch.zeros((1, pad_to), dtype=torch.long)
            attn[0, :n] = 1
            labels = torch.full((1, pad_to), -100, dtype=torch.long)
            labels[0, :n] = torch.where(torch.tensor(e.trained), ids[0, :n], -100)
            ids, attn, labels = ids.to(device), attn.to(device), labels.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=ids, attention_mask=attn).logits             # [1, pad_to, V]
            nll = F.cross_entropy(logits[0, :-1].float(), labels[0, 1:], ignore_index=-100, reduction="none")
            loss = nll.sum() / (labels[0, 1:] != -100).sum() * e.weight
            (loss / accum).backward()
            step_loss += loss.detach() / accum
            real += n
            padded += pad_to
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(step_loss))
    sync(device)
    return {"loss": losses, "wall_s": time.perf_counter() - t0, "tokens": real, "padded_tokens": padded}


# ------------------------------------------------------------------ main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="default", help="embedded model size (rise.embedded.SIZES)")
    ap.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "bf16"),
                    help="both sides under the same precision; auto: what `rise train` picks here "
                         "(bf16 autocast on a GPU with bf16 or a CPU with native bf16)")
    ap.add_argument("--gpu-size", default=None, metavar="0.5b",
                    help="a randomly initialised Qwen2-0.5B-shaped model (bf16) on the GPU instead")
    ap.add_argument("--device", default=None, help="default: cuda with --gpu-size, else cpu")
    ap.add_argument("--preset", default="paper", help="prompt preset of the examples (paper: the official one)")
    ap.add_argument("--examples", type=int, default=None, help="examples generated (default: enough for --steps)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps of ours (default 6 CPU, 24 GPU)")
    ap.add_argument("--baseline-steps", type=int, default=None, help="optimizer steps of the official recipe "
                    "(default 2 CPU, 4 GPU); its losses are compared with ours' first steps")
    ap.add_argument("--accum", type=int, default=16, help="examples per optimizer step (official: 1 x 16)")
    ap.add_argument("--pad-to", type=int, default=2048, help="official recipe: pad every example to this length")
    ap.add_argument("--budget", type=int, default=None, help="ours: padded tokens per micro-batch "
                    "(default: TrainConfig.micro_batch_tokens)")
    ap.add_argument("--packing", default="auto", choices=("auto", "on", "off"),
                    help="ours: train.packing (auto packs models at least 256 wide)")
    ap.add_argument("--attention", default="auto", choices=("auto", "rise", "model"),
                    help="ours: train.attention (auto: rise's matmul attention on a CPU)")
    ap.add_argument("--lr", type=float, default=1e-5, help="official: 1e-5")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadier on 2 shared cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests: fewer layers
    return ap.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    import torch
    from accelerate import Accelerator

    from rise.train import (
        TrainConfig,
        collate,
        encode_examples,
        fit,
        global_batches,
        micro_batches,
        per_example_nll,
    )

    gpu = bool(args.gpu_size)
    device = torch.device(args.device or ("cuda" if gpu else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (24 if gpu else 6)
    base_steps = min(args.baseline_steps or (4 if gpu else 2), steps)
    n_examples = args.examples or steps * args.accum

    t_setup = time.perf_counter()
    examples = rise_examples(n_examples, args.preset, seed=args.seed)
    tok = tokenizer_for(example_texts(examples))
    model = build_lm(tok, args.size, args.gpu_size, max_positions=max(4096, args.pad_to), seed=args.seed,
                     layers=args.layers)
    cfg = TrainConfig(lr=args.lr, max_steps=steps, batch_size=args.accum, warmup_ratio=0.0, grad_clip=1.0,
                      max_length=args.pad_to, seed=args.seed,
                      micro_batch_tokens=args.budget or TrainConfig.micro_batch_tokens, packing=args.packing,
                      attention=args.attention)
    from rise.packing import resolve_packing

    packed = resolve_packing(cfg, model)
    encoded, skipped = encode_examples(tok, examples, cfg)
    if len(encoded) < args.accum:
        raise SystemExit(f"only {len(encoded)} examples fit in {args.pad_to} tokens")
    lengths = [len(e.input_ids) for e in encoded]
    batches = global_batches(len(encoded), args.accum, steps, cfg.seed)  # what fit will run
    pad_id = tok.pad_token_id
    baseline = copy.deepcopy(model).to(device)
    params = sum(p.numel() for p in model.parameters())
    mc = model.config
    print(f"model: {'Qwen2-0.5B-shaped, random, bf16' if gpu else f'embedded {args.size!r}, float32'}, "
          f"{params / 1e6:.1f}M parameters (hidden {mc.hidden_size}, {mc.num_hidden_layers} layers, "
          f"vocab {mc.vocab_size}); device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else f", {torch.get_num_threads()} thread(s)"))
    print(f"data: {len(encoded)} RISE examples (preset {args.preset!r}, turns 1-5), {sum(lengths) / len(lengths):.0f} "
          f"tokens on average (min {min(lengths)}, max {max(lengths)}), "
          f"{sum(sum(e.trained) for e in encoded) / len(encoded):.0f} trained; {skipped} skipped; "
          f"global batch {args.accum}; setup {time.perf_counter() - t_setup:.0f} s")

    # Warm-up (allocator, kernels) on copies, so neither side pays it in its timing.
    warm = copy.deepcopy(model).to(device)
    e0 = [encoded[i] for i in micro_batches(batches[0], lengths, cfg.micro_batch_tokens)[0]]
    ids, attn, tmask, _ = (t.to(device) for t in collate(e0, pad_id))
    per_example_nll(warm, ids, attn, tmask).sum().backward()
    official_recipe(warm, encoded, [batches[0][:1]], cfg, 1, args.pad_to, 1, pad_id, device)
    del warm, ids, attn, tmask

    # ours: rise.train.fit
    from rise.train import resolve_mixed_precision

    mp = resolve_mixed_precision(args.mixed_precision, cpu=device.type == "cpu") or "no"
    print(f"precision: {'bf16 autocast, fp32 master weights' if mp == 'bf16' else 'fp32'} (both sides)")
    acc = Accelerator(cpu=device.type == "cpu", mixed_precision=mp)
    with PeakMemory(device) as mem_ours:
        ours = fit(model, tok, examples, cfg, progress=False, accelerator=acc)
    ours_tps = ours["tokens"] / ours["wall_s"]

    # the official recipe, on the first base_steps of the same global batches
    with PeakMemory(device) as mem_off:
        off = official_recipe(baseline, encoded, batches[:base_steps], cfg, steps, args.pad_to, args.accum,
                              pad_id, device, bf16=mp == "bf16")
    off_tps = off["tokens"] / off["wall_s"]

    print(f"ours:     {ours['tokens']:,} real tokens in {ours['wall_s']:.1f} s ({steps} steps, micro-batch "
          f"budget {cfg.micro_batch_tokens} tokens, {'packed' if packed else 'padded'}) = {ours_tps:,.0f} tokens/s, "
          f"peak {mem_ours}")
    print(f"official: {off['tokens']:,} real tokens ({off['padded_tokens']:,} with padding) in {off['wall_s']:.1f} s "
          f"({base_steps} steps, pad to {args.pad_to}, micro-batch 1, accumulation {args.accum}) = "
          f"{off_tps:,.0f} tokens/s, peak {mem_off}")
    peak = peak_flops(device)
    if peak:
        def mfu(tokens_s_wall):
            flops = sum(flops_per_sequence(mc, lengths[i]) for b in batches for i in b)
            return flops / sum(lengths[i] for b in batches for i in b) * tokens_s_wall / peak
        print(f"MFU: ours {100 * mfu(ours_tps):.1f}%, official {100 * mfu(off_tps):.1f}% "
              f"(peak {peak / 1e12:.0f} TFLOP/s bf16)")
    tol = 2e-2 if gpu or mp == "bf16" else 1e-4
    worst = 0.0
    for s in range(base_steps):
        a, b = ours["loss"][s], off["loss"][s]
        rel = abs(a - b) / max(abs(b), 1e-12)
        worst = max(worst, rel)
        print(f"loss step {s}: ours {a:.6f}  official {b:.6f}  (relative difference {rel:.1e})")
    print(f"losses {'agree' if worst <= tol else 'DISAGREE'} within {tol:g}")
    line = (f"trainer: {ours_tps / off_tps:.1f}x the official recipe ({ours_tps:,.0f} vs {off_tps:,.0f} tokens/s, "
            f"peak {gb(mem_ours.peak)})")
    print(line)
    return line


if __name__ == "__main__":
    main()
