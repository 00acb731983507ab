"""The math-verify worker process: reads comparison requests as JSON lines on stdin, answers on
stdout. Run by `rise.tasks.verifier` as a separate interpreter, never imported by `rise`.

Why a process: sympy can run for hours or eat all memory on inputs such as `10^{10^{10}}`, and
math-verify's own timeout uses SIGALRM, which cannot interrupt long C-level big-integer work and
fails off the main thread. The parent kills this process when a comparison overruns and starts a
fresh one. This file imports only the standard library and math-verify (no `rise`), so it runs
the same whatever the caller's sys.path.

Protocol: first line out is {"ready": true} or {"fatal": "why"}; then, per request
{"id": n, "gold": str, "pred": str}, one line {"id": n, "equal": bool} or {"id": n, "error": str}.
"""
import functools
import io
import json
import os
import sys


def _limit_memory(megabytes: int) -> None:
    """Cap the address space so a runaway big-integer power fails with MemoryError, not OOM."""
    try:
        import resource
        limit = megabytes * 2 ** 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass


def main(argv: list[str]) -> int:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)                      # stray prints from libraries cannot corrupt the protocol
    sys.stdout = sys.stderr

    def send(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    memory_mb = int(argv[1]) if len(argv) > 1 else 0
    if memory_mb > 0:
        _limit_memory(memory_mb)
    try:
        import logging
        logging.disable(logging.CRITICAL)   # math-verify warns on every disabled inner timeout
        from math_verify import parse, verify
    except BaseException as e:  # noqa: BLE001 - report any import failure to the parent
        send({"fatal": f"cannot import math_verify: {type(e).__name__}: {e}"})
        return 1

    @functools.lru_cache(maxsize=4096)
    def parsed(answer: str) -> tuple:
        # Inner timeouts off: they rely on SIGALRM; the parent enforces the time limit.
        return tuple(parse("\\boxed{" + answer + "}", parsing_timeout=None))

    send({"ready": True})
    for line in io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8"):
        try:
            req = json.loads(line)
            rid, gold, pred = req["id"], str(req["gold"]), str(req["pred"])
        except (ValueError, KeyError, TypeError):
            continue
        try:
            g, p = parsed(gold), parsed(pred)
            equal = bool(g and p and verify(list(g), list(p), timeout_seconds=None))
            send({"id": rid, "equal": equal})
        except Exception as e:  # noqa: BLE001 - MemoryError, RecursionError, sympy errors
            send({"id": rid, "error": type(e).__name__})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
