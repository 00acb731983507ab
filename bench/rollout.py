#!/usr/bin/env python
"""Rollout throughput: `HFBackend` against plain `model.generate` per state, same model and states.

    python bench/rollout.py                       # embedded default model, CPU (< 5 min)
    python bench/rollout.py --gpu-size 0.5b       # random Qwen2-0.5B-shaped model, bf16, GPU
    python bench/rollout.py --stages runs/default # wall time per stage of a finished `rise run`

A RISE collection turn samples N responses at every active state. Both sides get the same
states, turn by turn, for `--turns` turns (5) with N = `--samples` (4):

ours   `rise.engines.hf.HFBackend.generate(states, n=N)`: batched across problems, sorted by
       length, each prompt prefilled once and its KV cache expanded to its N rows, finished rows
       dropped early.
plain  `model.generate(prompt, num_return_sequences=N, do_sample=True)` once per state.

Turn k+1's states are built from ours' first sample at turn k (question + that attempt + the
"incorrect" feedback, the official context window), so both sides see identical prompts.

Model (`--model`): `auto` uses the embedded default base if it is already built (shipped or in
the cache; it is never pretrained here), a path uses that model; otherwise (or with `random`)
a freshly initialised model of the embedded default shape. A random model writes garbage of
random length, so then both sides generate exactly `--max-new-tokens` tokens per row with no
early stop (ours: no stop token; plain: `min_new_tokens = max_new_tokens`); a trained model
stops at its end-of-turn token on both sides, and a solved problem leaves the rollout as in
collection. Tokens/s counts generated tokens (re-tokenised from the text on both sides in
trained mode); each turn is timed `--repeat` times per side, alternating, and the fastest
counts. The last line reads `rollout: 2.9x plain generate (8,600 vs 3,000 tokens/s)`.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trainer import arith_problems, build_lm, sync, tokenizer_for  # noqa: E402


def find_model(spec: str):
    """(path or None, description) for --model."""
    if spec == "random":
        return None, "random"
    if spec != "auto":
        if not Path(spec).is_dir():
            raise SystemExit(f"--model: {spec} is not a model directory")
        return spec, spec
    try:
        from rise.pretrain import (
            PretrainConfig,
            base_model_name,
            cache_root,
            is_complete,
            shipped_base_model,
        )

        cfg = PretrainConfig()
        path = shipped_base_model(cfg) or cache_root() / "models" / base_model_name(cfg)
        if is_complete(Path(path)):
            return str(path), f"embedded default base ({path})"
    except Exception:  # an older layout: fall back to a random model
        pass
    return None, "random"


def plain_generate(model, tok, convs, n, max_new, fixed, device):
    """Plain per-state sampling: one `model.generate(num_return_sequences=n)` per state."""
    import torch

    from rise.engines.hf import render_prompt

    out = []
    for conv in convs:
        ids = tok(render_prompt(tok, conv), add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
        kw = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=max_new,
                  num_return_sequences=n, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if fixed:
            kw["min_new_tokens"] = max_new
        with torch.inference_mode():
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw)
        out.append(tok.batch_decode(seq[:, ids.shape[1]:], skip_special_tokens=True))
    return out


def count_tokens(tok, texts) -> int:
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for group in texts for t in group)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="auto", help="auto | random | a model directory")
    ap.add_argument("--gpu-size", default=None, metavar="0.5b",
                    help="a random Qwen2-0.5B-shaped model (bf16) on the GPU")
    ap.add_argument("--device", default=None)
    ap.add_argument("--problems", type=int, default=None, help="problems rolled out (default 16 CPU, 8 GPU: "
                    "plain generate runs ~16 decode steps/s there whatever the batch)")
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--samples", type=int, default=4, help="N samples per state")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default 48 CPU, 64 GPU")
    ap.add_argument("--batch-size", type=int, default=None, help="HFBackend rows per forward (default: EngineConfig's)")
    ap.add_argument("--preset", default="default", help="prompt preset of the states")
    ap.add_argument("--repeat", type=int, default=None, help="time each turn this many times per side, keep the "
                    "fastest (default 2 CPU, 1 GPU)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="start no new turn after this many seconds (the comparison covers the turns done)")
    ap.add_argument("--layers", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests: fewer layers
    ap.add_argument("--stages", metavar="RUN_DIR", help="instead: wall time per stage of a finished `rise run` "
                    "(same as bench/stages.py RUN_DIR)")
    return ap.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    if args.stages:
        import stages

        return str(stages.main([args.stages]))
    import torch

    from rise.engines import EngineConfig
    from rise.engines.hf import HFBackend, SamplingParams
    from rise.episodes import Attempt, render_state
    from rise.prompts import get_preset

    gpu = bool(args.gpu_size)
    device = torch.device(args.device or ("cuda" if gpu else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    n_problems = args.problems or (8 if gpu else 16)
    max_new = args.max_new_tokens or (64 if gpu else 48)
    args.repeat = args.repeat or (1 if gpu else 2)
    task, probs, _ = arith_problems(n_problems, args.seed)

    path, desc = (None, "random") if gpu else find_model(args.model)
    if path:
        from rise.modeling import load_model

        model, tok = load_model(path, device=str(device))
    else:
        tok = tokenizer_for([t for p in task.load("train", limit=2000) for t in (p.question, p.solution)])
        model = build_lm(tok, "default", args.gpu_size, seed=args.seed, layers=args.layers).to(device)
        desc = ("random Qwen2-0.5B-shaped (bf16)" if gpu else "random, embedded default shape") + \
            f"; every row generates exactly {max_new} tokens (no early stop) on both sides"
    model.eval()
    fixed = path is None
    if path and device.type == "cpu":
        from rise.modeling import resolve_dtype

        # ours runs the model as rise loads it (engine dtype auto: bf16 on a CPU with native bf16);
        # plain `generate` gets float32, transformers' own default and its faster dtype on a CPU
        # (its sdpa attention is several times slower in bf16), so the baseline is not handicapped
        plain_model = model.float()
        model = copy.deepcopy(plain_model).to(resolve_dtype("auto", "cpu"))
    else:
        plain_model = model
    backend = HFBackend(model, tok, batch_size=args.batch_size or EngineConfig.batch_size)
    if fixed:
        backend.stop_ids = []  # no stop token: fixed-length rows, like min_new_tokens on the other side
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=max_new)
    preset = get_preset(args.preset)
    print(f"model: {desc}; {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else f", {torch.get_num_threads()} thread(s)"))
    print(f"{n_problems} problems, {args.turns} turns, N={args.samples} samples per state, sampling T=1.0, "
          f"max {max_new} new tokens, HFBackend batch {backend.batch_size} rows ({backend.decoder} decoder, "
          f"{next(model.parameters()).dtype}); plain generate in {next(plain_model.parameters()).dtype}")

    # warm-up both paths on one state (allocator, kernels)
    warm = [render_state(probs[0].question, [], preset)]
    backend.generate(warm, args.samples, SamplingParams(1.0, 1.0, 4), seed=1)
    plain_generate(plain_model, tok, warm, args.samples, 4, fixed, device)

    attempts = {p.id: [] for p in probs}
    active = list(probs)
    t_ours = t_plain = 0.0
    tok_ours = tok_plain = 0
    t_start = time.perf_counter()
    for turn in range(1, args.turns + 1):
        if not active:
            break
        if args.max_seconds and turn > 1 and time.perf_counter() - t_start > args.max_seconds:
            print(f"stopping after {turn - 1} turns (--max-seconds {args.max_seconds:g})")
            break
        convs = [render_state(p.question, attempts[p.id], preset, "incorrect", history=1) for p in active]
        # The two sides alternate, --repeat times each; the fastest of each counts (other
        # processes on a shared machine slow a run down, never speed it up). Same seed every
        # repetition: ours produces the same samples each time.
        best_ours = best_plain = float("inf")
        for _ in range(args.repeat):
            sync(device)
            t0 = time.perf_counter()
            ours = backend.generate(convs, args.samples, params, seed=args.seed * 1000 + turn)
            sync(device)
            t1 = time.perf_counter()
            plain = plain_generate(plain_model, tok, convs, args.samples, max_new, fixed, device)
            sync(device)
            t2 = time.perf_counter()
            best_ours, best_plain = min(best_ours, t1 - t0), min(best_plain, t2 - t1)
        if fixed:
            n_ours = n_plain = len(convs) * args.samples * max_new
        else:
            n_ours, n_plain = count_tokens(tok, ours), count_tokens(tok, plain)
        t_ours += best_ours
        t_plain += best_plain
        tok_ours += n_ours
        tok_plain += n_plain
        print(f"turn {turn}: {len(convs)} states, ours {n_ours:,} tokens in {best_ours:.2f} s, "
              f"plain {n_plain:,} tokens in {best_plain:.2f} s")
        still = []
        for p, samples in zip(active, ours, strict=True):
            answer, reward = task.grade(samples[0], p)
            attempts[p.id].append(Attempt(samples[0], answer, reward))
            if reward != 1.0 or fixed:
                still.append(p)
        active = still

    a, b = tok_ours / t_ours, tok_plain / t_plain
    print(f"ours:  {tok_ours:,} tokens in {t_ours:.1f} s = {a:,.0f} tokens/s")
    print(f"plain: {tok_plain:,} tokens in {t_plain:.1f} s = {b:,.0f} tokens/s")
    line = f"rollout: {a / b:.1f}x plain generate ({a:,.0f} vs {b:,.0f} tokens/s)"
    print(line)
    return line


if __name__ == "__main__":
    main()
