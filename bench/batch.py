#!/usr/bin/env python
"""Which `engine.batch_size` (rows decoded at once) is fastest for the embedded default, one run.

    python bench/batch.py [--sizes 128 256 512] [--problems 256] [--threads 2]

Samples `--problems` test problems' turn-1 states with `HFBackend` at each batch size, with 5
samples per state (a collection or parallel-evaluation turn) and with 1 (a later evaluation
turn), twice each, alternating, best kept. Prints tokens/s per setting; the last line is
`batch: <best> rows, <X>x <first> rows at 5 samples, <Y>x at 1 sample (<threads> threads)`.
Run it alone.
"""
from __future__ import annotations

import argparse
import time


def main() -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--problems", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from rise.engines import EngineConfig, open_backend
    from rise.engines.hf import SamplingParams
    from rise.episodes import EpisodeConfig
    from rise.pretrain import ensure_base_model
    from rise.run import RunConfig, base_config
    from rise.tasks import get_task

    torch.set_num_threads(args.threads)
    cfg = RunConfig()
    base = str(ensure_base_model(base_config(cfg), progress=False))
    task = get_task("arith", **cfg.pretrain.task_options)
    convs = [EpisodeConfig().render(p.question, []) for p in task.load("test", limit=args.problems)]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=96)
    best: dict[tuple[int, int], float] = {}
    for _ in range(2):
        for bs in args.sizes:
            backend = open_backend(base, EngineConfig(batch_size=bs))
            for n in (5, 1):
                t0 = time.perf_counter()
                outs = backend.generate(convs, n, params, seed=0)
                wall = time.perf_counter() - t0
                new = sum(len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) for r in outs for t in r)
                best[(bs, n)] = max(best.get((bs, n), 0.0), new / wall)
    for (bs, n), v in sorted(best.items()):
        print(f"batch {bs:>4} rows, {n} sample(s) per state: {v:,.0f} tokens/s")
    top = max(args.sizes, key=lambda b: best[(b, 5)] + best[(b, 1)])
    first = args.sizes[0]
    line = (f"batch: {top} rows, {best[(top, 5)] / best[(first, 5)]:.2f}x {first} rows at 5 samples, "
            f"{best[(top, 1)] / best[(first, 1)]:.2f}x at 1 sample ({args.threads} threads)")
    print(line)
    return line


if __name__ == "__main__":
    main()
