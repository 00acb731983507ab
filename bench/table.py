"""The paper's Table 1 in miniature, on the embedded default, over several seeds.

For each seed it runs the whole pipeline (`rise.run.run`: base, RISE iterations, Classic SFT,
Self-Refine) and then the paper's analyses on the same held-out problems:
  (a) NLL of the reference solution given the multi-turn context (question, a wrong attempt, the
      feedback) versus given the question alone, over the training of Classic and each RISE
      iteration, on held-out validation problems the base gets wrong (`rise.probe`; the run
      writes probe/nll_over_training.{json,png});
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
    p.add_argument("--probe", type=int, default=200, help="held-out problems in the NLL probe of (a)")
    p.add_argument("--probe-every", type=int, default=50, help="training steps between NLL probe scorings")
    p.add_argument("--analysis-seeds", type=int, nargs="*", default=None,
                   help="seeds to run the analyses on (default: all; none: --analysis-seeds)")
    return p.parse_args(argv)


def analyses(run_dir: Path, cfg, budgets, progress=True) -> dict:
    """(a), (b), (c) on one finished run folder ((a) was scored during training: `nll_probe`)."""
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
    out = {"nll_over_training": {}, "nll": {}, "beyond_pass_at_b": {}, "edit_sizes": {}}
    curves_file = run_dir / "probe" / "nll_over_training.json"
    if curves_file.is_file():  # absent with --probe 0 or no RISE iteration
        out["nll_over_training"] = json.loads(curves_file.read_text())
        out["nll"] = nll_summary(out["nll_over_training"])
    for name in paths:
        out["edit_sizes"][name] = edit_sizes(by_model[name])
    # (b): B parallel samples of the base and of each RISE model itself vs that RISE model's chain
    wide = copy.deepcopy(ev)
    wide.parallel, wide.turns = max(budgets), 1
    for name, path in paths.items():
        if name != "base" and not name.startswith("rise"):
            continue
        par = run_episodes(open_backend(path, ev.engine), task, problems, wide, name, progress)
        for rise_name in (n for n in paths if n.startswith("rise") and name in ("base", n)):
            out["beyond_pass_at_b"][f"{name} parallel vs {rise_name} sequential"] = \
                beyond_pass_at_b(par, by_model[rise_name], budgets)
    return out


def nll_summary(curves: dict) -> dict:
    """(a) at the start and end of each training: reference NLL after a wrong attempt
    (multi_turn) and from the question alone, and their difference."""
    out = {}
    for name, c in curves.items():
        for at, i in (("start", 0), ("end", -1)):
            m, a = c["multi_turn"][i], c["alone"][i]
            out[f"{name} {at} (step {c['step'][i]})"] = {"multi_turn": m, "alone": a, "multi_minus_alone": m - a}
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


def format_analyses(extra: dict) -> str:
    """(a), (b), (c) of every analysed seed as markdown tables."""
    out = ["## (a) NLL of the reference solution (nats/token), held-out problems the base gets wrong\n",
           "| seed | training, when | after a wrong attempt | question alone | difference |", "|---|---|---|---|---|"]
    for seed, a in extra.items():
        for where, v in a["nll"].items():
            out.append(f"| {seed} | {where} | {v['multi_turn']:.3f} | {v['alone']:.3f} "
                       f"| {v['multi_minus_alone']:+.3f} |")
    if not any(a["nll"] for a in extra.values()):
        out.append("| - | not measured (--probe 0) | | | |")
    budgets = next(iter(next(iter(extra.values()))["beyond_pass_at_b"].values()), {})
    out += ["\n## (b) Share of problems B turn-1 samples never solve but the RISE chain solves in T turns\n",
            "| seed | comparison | " + " | ".join(f"B={b}" for b in budgets) + " |", "|---" * (len(budgets) + 2) + "|"]
    for seed, a in extra.items():
        for name, row in a["beyond_pass_at_b"].items():
            out.append(f"| {seed} | {name} | " + " | ".join(f"{100 * v:.1f}%" for v in row.values()) + " |")
    bins = list(next(iter(next(iter(extra.values()))["edit_sizes"].values()))["all"])
    out += ["\n## (c) Edit size between consecutive attempts after a wrong one (share; wrong -> right in brackets)\n",
            "| seed | model | median | " + " | ".join(bins) + " |", "|---" * (len(bins) + 3) + "|"]
    for seed, a in extra.items():
        for name, e in a["edit_sizes"].items():
            med = "-" if e["median_all"] is None else f"{100 * e['median_all']:.0f}%"
            if e["median_wrong_to_right"] is not None:
                med += f" ({100 * e['median_wrong_to_right']:.0f}%)"
            cells = [f"{100 * e['all'][b]:.0f}% ({100 * e['wrong_to_right'][b]:.0f}%)" for b in bins]
            out.append(f"| {seed} | {name} | {med} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    from rise.config import parse_override, resolve
    from rise.records import write_json, write_text
    from rise.run import RunConfig, run

    overrides = dict(parse_override(s) for s in args.set)
    out = Path(args.out)
    reports, extra, t0 = [], {}, time.perf_counter()
    for seed in args.seeds:
        probe = {"nll_probe": args.probe, "train.eval_every": args.probe_every}
        cfg = resolve(RunConfig, args.config, {**probe, **overrides, "seed": seed, "eval.seed": 1000 + seed,
                                               "threads": args.threads})
        run_dir = out / f"seed{seed}"
        reports.append(run(cfg, run_dir))
        if args.analysis_seeds is None or seed in args.analysis_seeds:
            extra[seed] = analyses(run_dir, cfg, args.budgets)
    table = summarize(reports)
    text = format_table(table)
    write_json(out / "bench.json", {"table": table, "analyses": extra, "seeds": args.seeds,
                                    "wall_s": time.perf_counter() - t0})
    if extra:
        text += "\n\n" + format_analyses(extra)
    write_text(out / "bench.md", f"# RISE on the embedded default, seeds {args.seeds}\n\n{text}\n")
    print(text)
    print(f"bench: {len(args.seeds)} seeds in {time.perf_counter() - t0:.0f} s -> {out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
