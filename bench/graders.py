#!/usr/bin/env python
"""Seconds per grader call: rise's `Task.judge` over the peer tables and restated real golds.

    python bench/graders.py [--threads 1] [--golds 200] [--all]

Calls: every row of tests/peer_tables/*.jsonl, then (when ../shared/data is there) `--golds`
GSM8K and MATH golds each (`--all`: every one) restated as models write them, plus MATH golds
with their last integer changed (those reach math-verify, the slow path). The math-verify worker
is started before timing (its start-up is printed apart: it is paid once per process). Prints
median / 90th percentile / worst per group; the last line is
`graders: median <x> s, worst <y> s per call (<n> calls, <k> threads)`.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from peer_tables import gold_of, load_tables  # noqa: E402
from rise.tasks import (  # noqa: E402
    Problem,
    get_task,
    verifier,  # noqa: E402
)
from rise.tasks.answers import answer_column_number  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
MINERVA = "Final Answer: The final answer is ${}$. I hope it is correct."


def peer_calls() -> list[tuple[str, str, str, str]]:
    """(group, task name, response, gold) for every peer-table row."""
    out = []
    for table, rows in load_tables().items():
        for r in rows:
            name = "gsm8k" if r["kind"] == "gsm8k" else "math"
            gold = answer_column_number(r["gold"]) if name == "gsm8k" else gold_of(r["gold"])
            out.append((f"peer:{table}", name, r["response"], gold or ""))
    return out


def gold_calls(limit: int | None) -> list[tuple[str, str, str, str]]:
    """Restated real golds (and MATH golds with a changed integer), `limit` per task."""
    if not SHARED.is_dir():
        return []
    out = []
    for name, file in (("gsm8k", "gsm8k_test.jsonl"), ("math", "math_test.jsonl")):
        problems = get_task(name).load("test", path=SHARED / file)
        for p in problems[:limit]:
            x = p.answer
            forms = ([f"The answer is {x}.", f"#### {x}", MINERVA.format(x)] if name == "gsm8k"
                     else [f"\\boxed{{{x}}}", MINERVA.format(x), f"The answer is ${x}$."])
            out += [(f"golds:{name}", name, r, x) for r in forms]
            ints = list(re.finditer(r"\d+", x))
            if name == "math" and ints:
                m = ints[-1]
                changed = x[:m.start()] + str(int(m.group()) + 1) + x[m.end():]
                out.append(("golds:math-changed", name, f"\\boxed{{{changed}}}", x))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--golds", type=int, default=200, help="golds per task (default 200)")
    ap.add_argument("--all", action="store_true", help="every gold of the shared data")
    args = ap.parse_args()

    calls = peer_calls() + gold_calls(None if args.all else args.golds)
    start = time.perf_counter()
    verifier.shared_worker().compare("1", "2", 60.0)          # start the worker untimed
    print(f"math-verify worker start-up: {time.perf_counter() - start:.2f} s (once per process)")

    import threading
    local = threading.local()

    def timed(call):
        group, name, response, gold = call
        tasks = getattr(local, "tasks", None)
        if tasks is None:
            tasks = local.tasks = {n: get_task(n) for n in ("gsm8k", "math")}
        problem = Problem(id="bench", question="", solution="", answer=gold)
        t0 = time.perf_counter()
        tasks[name].judge(response, problem)
        return group, time.perf_counter() - t0

    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        results = list(pool.map(timed, calls))
    wall = time.perf_counter() - wall

    groups: dict[str, list[float]] = {}
    for group, secs in results:
        groups.setdefault(group, []).append(secs)
    print(f"{'group':24s} {'calls':>6s} {'median s':>10s} {'p90 s':>10s} {'worst s':>10s}")
    for group, secs in groups.items():
        secs.sort()
        print(f"{group:24s} {len(secs):6d} {statistics.median(secs):10.6f} "
              f"{secs[int(0.9 * (len(secs) - 1))]:10.6f} {secs[-1]:10.6f}")
    every = sorted(s for _, s in results)
    print(f"wall {wall:.2f} s, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"graders: median {statistics.median(every):.6f} s, worst {every[-1]:.6f} s per call "
          f"({len(every)} calls, {args.threads} threads)")


if __name__ == "__main__":
    main()
