"""The math-verify worker process: reads comparison requests as JSON lines on stdin, answers on
stdout. Run by `rise.tasks.verifier` as a separate interpreter, never imported by `rise`.

Why a process: sympy can run for hours or eat all memory on inputs such as `10^{10^{10}}`, and
math-verify's own timeout uses SIGALRM, which cannot interrupt long C-level big-integer work and
fails off the main thread. The parent kills this process when a comparison overruns and starts a
fresh one. This file imports only the standard library and math-verify (no `rise`), so it runs
the same whatever the caller's sys.path.

Protocol: first line out is {"ready": true} or {"fatal": "why"}; then, per request
{"id": n, "gold": str, "pred": str}, one line {"id": n, "equal": bool, "gold": status} or
{"id": n, "error": str}. The status says whether the gold's parse can be trusted: "ok",
"unparsed" (LaTeX that math-verify cannot read) or "suspect" (the parse disagrees with the string:
it lost a `\\pi` or `\\infty`, or holds a symbol whose name is not in the string). Only "ok"
golds are compared, so a gold that parses wrong never makes a wrong answer correct.

Answers are parsed as LaTeX only: with math-verify's default expression fallback a gold it cannot
read as LaTeX, such as `\\frac \\pi4 + 2 - \\sqrt2`, was read as the first plain number in it (2).
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


def disagrees(answer: str, value, sympy) -> bool:
    """Whether a parse visibly lost part of its string: a `\\pi` or `\\infty` that is not in the
    value, or a symbol in the value whose name the string does not hold."""
    has = getattr(value, "has", None)
    if has is None:
        return False
    try:
        if "\\pi" in answer and not has(sympy.pi):
            return True
        if "\\infty" in answer and not (has(sympy.oo) or has(-sympy.oo)):
            return True
        text = answer.lower()
        for sym in getattr(value, "free_symbols", ()):
            name = str(sym).lower().lstrip("\\")
            head = "".join(c for c in name[:1] if c.isalpha())
            if head and head not in text:
                return True
    except Exception:  # noqa: BLE001 - an odd value: trust it as math-verify does
        return False
    return False


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
        import sympy
        from math_verify import LatexExtractionConfig, parse, verify
    except BaseException as e:  # noqa: BLE001 - report any import failure to the parent
        send({"fatal": f"cannot import math_verify: {type(e).__name__}: {e}"})
        return 1

    latex_only = [LatexExtractionConfig(boxed_match_priority=0)]

    @functools.lru_cache(maxsize=4096)
    def parsed(answer: str) -> tuple:
        """The sympy values of `answer` (strings, math-verify's unparsed fallbacks, dropped)."""
        # Inner timeouts off: they rely on SIGALRM; the parent enforces the time limit.
        values = parse("\\boxed{" + answer + "}", latex_only, parsing_timeout=None)
        return tuple(v for v in values if not isinstance(v, str))

    def status(answer: str, values: tuple) -> str:
        if not values:
            return "unparsed"
        return "suspect" if disagrees(answer, values[0], sympy) else "ok"

    send({"ready": True})
    for line in io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8"):
        try:
            req = json.loads(line)
            rid, gold, pred = req["id"], str(req["gold"]), str(req["pred"])
        except (ValueError, KeyError, TypeError):
            continue
        try:
            g = parsed(gold)
            gold_status = status(gold, g)
            p = parsed(pred) if gold_status == "ok" else ()
            equal = bool(p and status(pred, p) == "ok"
                         and verify(list(g), list(p), timeout_seconds=None))
            send({"id": rid, "equal": equal, "gold": gold_status})
        except Exception as e:  # noqa: BLE001 - MemoryError, RecursionError, sympy errors
            send({"id": rid, "error": type(e).__name__})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
