#!/usr/bin/env python
"""Which torch thread count is fastest for the embedded default, measured in one run.

    python bench/threads.py [--steps 40] [--problems 64]

Times, at 1 and at 2 torch threads (alternating, twice each, best kept so that a burst of other
load hits both), (a) `fit` on RISE-style examples of the shipped base and (b) turn-1 sampling of
arith problems with the HF backend. Prints tokens/s per setting; the last line is
`threads: 1 thread = <X>x 2 threads training, <Y>x generation (<cores> cores, load <L>)`.
Run it alone: another busy process on 2 cores halves either figure.
"""
from __future__ import annotations

import argparse
import copy
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--problems", type=int, default=64)
    args = ap.parse_args()

    import torch

    from rise.engines import EngineConfig, open_backend
    from rise.engines.hf import SamplingParams
    from rise.episodes import EpisodeConfig, with_response
    from rise.modeling import load_model
    from rise.pretrain import ensure_base_model
    from rise.run import RunConfig, base_config
    from rise.tasks import get_task
    from rise.train import TrainConfig, fit

    run_cfg = RunConfig()
    base = str(ensure_base_model(base_config(run_cfg), progress=False))
    task = get_task("arith", **run_cfg.pretrain.task_options)
    probs = task.load("train", limit=args.problems)
    ep = EpisodeConfig()
    exs = [{"messages": with_response(ep.render(p.question, []), p.solution), "weight": 12.18} for p in probs]
    model, tok = load_model(base, dtype="float32", device="cpu")
    tcfg = TrainConfig(**{**vars(run_cfg.train), "max_steps": args.steps})
    convs = [ep.render(p.question, []) for p in probs]
    params = SamplingParams(temperature=1.0, max_new_tokens=96)

    best: dict[tuple[str, int], float] = {}
    for _ in range(2):
        for n in (1, 2):
            torch.set_num_threads(n)
            stats = fit(copy.deepcopy(model), tok, exs, tcfg, progress=False)
            key = ("train", n)
            best[key] = max(best.get(key, 0.0), stats["tokens_per_s"])
            backend = open_backend(base, EngineConfig())
            t0 = time.perf_counter()
            outs = backend.generate(convs, 5, params, seed=0)
            wall = time.perf_counter() - t0
            new = sum(len(tok(t)["input_ids"]) for row in outs for t in row)
            best[("generate", n)] = max(best.get(("generate", n), 0.0), new / wall)
            del backend
    for (what, n), v in sorted(best.items()):
        print(f"{what:>9} {n} thread(s): {v:,.0f} tokens/s")
    tr = best[("train", 1)] / best[("train", 2)]
    ge = best[("generate", 1)] / best[("generate", 2)]
    print(f"threads: 1 thread = {tr:.2f}x 2 threads training, {ge:.2f}x generation "
          f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
