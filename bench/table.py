"""The paper's Table 1 in miniature, on the embedded default, over several seeds.

For each seed it runs the whole pipeline (`rise.run.run`: base, RISE iterations, Classic SFT,
Self-Refine) and then the paper's analyses on the same held-out problems:
  (a) NLL of the reference solution given the multi-turn context (question, a wrong attempt, the
      feedback) versus given the question alone, for the base, Classic and each RISE iteration;
  (b) the share of problems that B parallel turn-1 samples never solve but the sequential chain
      of the RISE model solves within T turns, B = 1..16;
  (c) the distribution of edit size between consecutive attempts, and real wrong -> right chains.
Prints the table (mean and per-seed values) and writes bench.json / bench.md under --out.

    python bench/table.py --seeds 0 1 --out runs/bench            # the full comparison (long)
    python bench/table.py --seeds 0 --set eval.limit=100           # a quick look
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

KEYS = ("m1@t1", "m5@t1", "p5@t1", "m1@t5", "p1@t5")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--config", default=None, help="YAML run config (default: the built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a run config key")
    p.add_argument("--budgets", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="B for analysis (b)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--analysis-seeds", type=int, nargs="*", default=None,
                   help="seeds to run the analyses on (default: all; none: --analysis-seeds)")
    return p.parse_args(argv)


def reference_nll(model_dir: str, task, problems, episodes_by_id, cfg) -> dict[str, float]:
    """(a): mean per-token NLL of each reference solution, given the question alone and given the
    question + the model's own wrong first attempt + the feedback line (its failed states)."""
    import torch

    from rise.episodes import Attempt, with_response
    from rise.modeling import load_model
    from rise.train import TrainConfig, collate, encode_examples, per_example_nll

    model, tok = load_model(model_dir, device="cpu")
    alone, multi = [], []
    for p in problems:
        ep = episodes_by_id.get(p.id)
        if ep is None or ep["turns"][0]["reward"] == 1.0:
            continue
        first = ep["turns"][0]
        alone.append({"messages": with_response(cfg.episode.render(p.question, []), p.solution)})
        multi.append({"messages": with_response(cfg.episode.render(
            p.question, [Attempt(first["text"], first["answer"], first["reward"])]), p.solution)})
    out = {}
    for name, exs in (("alone", alone), ("multi_turn", multi)):
        enc, _ = encode_examples(tok, exs, TrainConfig(max_length=4096))
        vals = []
        with torch.no_grad():
            for i in range(0, len(enc), 32):
                ids, attn, tm, _ = collate(enc[i:i + 32], tok.pad_token_id)
                vals.extend(per_example_nll(model, ids, attn, tm).tolist())
        out[name] = statistics.fmean(vals) if vals else float("nan")
    out["n"] = len(alone)
    return out


def analyses(run_dir: Path, cfg, budgets, progress=True) -> dict:
    """(a), (b), (c) on one finished run folder."""
    from rise.analysis import beyond_pass_at_b, edit_sizes
    from rise.engines import open_backend
    from rise.evaluate import run_episodes
    from rise.records import read_jsonl
    from rise.run import task_options
    from rise.tasks import get_task

    ev = copy.deepcopy(cfg.eval)
    task = get_task(cfg.task, **task_options(cfg))
    problems = task.load(ev.split, path=cfg.test_data, limit=ev.limit)
    episodes = read_jsonl(run_dir / "eval" / "episodes.jsonl")
    by_model: dict[str, list[dict]] = {}
    for ep in episodes:
        by_model.setdefault(ep["model"], []).append(ep)
    paths = json.loads((run_dir / "eval" / "models.json").read_text())
    out = {"nll": {}, "beyond_pass_at_b": {}, "edit_sizes": {}}
    for name, path in paths.items():
        eps = {ep["problem_id"]: ep for ep in by_model[name]}
        out["nll"][name] = reference_nll(path, task, problems, eps, ev)
        out["edit_sizes"][name] = edit_sizes(by_model[name])
    # (b): B parallel samples of each model vs the sequential chain of each RISE model
    wide = copy.deepcopy(ev)
    wide.parallel, wide.turns = max(budgets), 1
    for name, path in paths.items():
        par = run_episodes(open_backend(path, ev.engine), task, problems, wide, name, progress)
        for rise_name in (n for n in paths if n.startswith("rise")):
            out["beyond_pass_at_b"][f"{name} parallel vs {rise_name} sequential"] = \
                beyond_pass_at_b(par, by_model[rise_name], budgets)
    return out


def summarize(reports: list[dict]) -> dict:
    """Mean and per-seed values of each method's metrics."""
    names = list(reports[0])
    table = {}
    for name in names:
        row = {}
        for k in (*KEYS, "turn_acc"):
            vals = [r[name][k] for r in reports if name in r and r[name].get(k) is not None]
            if k == "turn_acc":
                row[k] = [statistics.fmean(v[i] for v in vals) for i in range(len(vals[0]))] if vals else []
            else:
                row[k] = statistics.fmean(vals) if vals else None
                row[f"{k}_seeds"] = vals
        table[name] = row
    return table


def format_table(table: dict) -> str:
    lines = ["| method | " + " | ".join(KEYS) + " | accuracy at turn 1..5 |", "|---" * (len(KEYS) + 2) + "|"]
    for name, row in table.items():
        cells = []
        for k in KEYS:
            seeds = "/".join(f"{100 * v:.1f}" for v in row[f"{k}_seeds"])
            cells.append(f"{100 * row[k]:.1f} ({seeds})" if row[k] is not None else "-")
        turns = " / ".join(f"{100 * a:.1f}" for a in row["turn_acc"])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {turns} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from rise.config import parse_override, resolve
    from rise.records import write_json, write_text
    from rise.run import RunConfig, run

    overrides = dict(parse_override(s) for s in args.set)
    out = Path(args.out)
    reports, extra, t0 = [], {}, time.perf_counter()
    for seed in args.seeds:
        cfg = resolve(RunConfig, args.config, {**overrides, "seed": seed, "eval.seed": 1000 + seed, "threads": args.threads})
        run_dir = out / f"seed{seed}"
        reports.append(run(cfg, run_dir))
        if args.analysis_seeds is None or seed in args.analysis_seeds:
            extra[seed] = analyses(run_dir, cfg, args.budgets)
    table = summarize(reports)
    text = format_table(table)
    write_json(out / "bench.json", {"table": table, "analyses": extra, "seeds": args.seeds,
                                    "wall_s": time.perf_counter() - t0})
    write_text(out / "bench.md", f"# RISE on the embedded default, seeds {args.seeds}\n\n{text}\n")
    print(text)
    if extra:
        print(json.dumps(extra, indent=1)[:6000])
    print(f"bench: {len(args.seeds)} seeds in {time.perf_counter() - t0:.0f} s -> {out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
