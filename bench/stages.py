#!/usr/bin/env python
"""Wall time per stage of a finished `rise run`, from its output folder.

    python bench/stages.py runs/default

Reads RUN_DIR/timings.json (written by `rise run`: base, iterN.collect, iterN.train, eval,
eval.<name> per eval.tasks entry, total; a stage reused from an earlier run shows the wall time
it took then) and, where present, the stage records beside it (collect/summary.json: states;
train/train_stats.json: tokens/s and peak memory). Standard library only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def detail(run: Path, stage: str) -> str:
    if stage.endswith(".collect"):
        s = load(run / stage.split(".")[0] / "collect" / "summary.json")
        if s:
            return f"{s.get('records', '?')} states, {s.get('rollouts', '?')} rollouts"
    if stage.endswith(".train"):
        s = load(run / stage.split(".")[0] / "train" / "train_stats.json")
        if s:
            parts = [f"{s.get('steps', '?')} steps", f"{s.get('examples', '?')} examples"]
            if s.get("tokens_per_s"):
                parts.append(f"{s['tokens_per_s']:,.0f} tokens/s")
            if s.get("peak_memory_bytes"):
                parts.append(f"peak {s['peak_memory_bytes'] / 1e9:.1f} GB")
            return ", ".join(parts)
    if stage == "eval" or stage.startswith("eval."):  # eval.<name>: an eval.tasks entry (rise.ood)
        folder = run / "eval" if stage == "eval" else run / "eval" / "ood" / stage[5:].replace(":", "_")
        s = load(folder / "report.json")
        if s:
            return f"{len(s)} model(s)"
    return ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", help="output folder of `rise run` (holds timings.json)")
    args = ap.parse_args(argv)
    run = Path(args.run_dir)
    timings = load(run / "timings.json")
    if not isinstance(timings, dict):
        print(f"stages: {run / 'timings.json'} is missing or not JSON (is the run finished?)", file=sys.stderr)
        return 2
    total = timings.get("total") or sum(v for k, v in timings.items() if k != "total")
    width = max(len(k) for k in timings)
    print(f"{'stage':<{width}}  {'wall':>9}  {'share':>6}  detail")
    for name, wall in timings.items():
        if name == "total":
            continue
        share = f"{100 * wall / total:5.1f}%" if total else "     -"
        print(f"{name:<{width}}  {wall:>8.1f}s  {share}  {detail(run, name)}")
    print(f"{'total':<{width}}  {total:>8.1f}s")
    stages = {k: v for k, v in timings.items() if k != "total"}
    slowest = max(stages, key=stages.get) if stages else "-"
    print(f"stages: {total:,.0f} s in all, slowest {slowest} ({stages.get(slowest, 0):,.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
