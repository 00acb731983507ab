"""Time-limited math-verify comparisons in a persistent worker process. Standard library only.

One worker serves every MATH task of the process (started lazily on the first comparison that the
string fast path cannot settle). A comparison that overruns its time limit is reported as a
timeout (the grader scores it wrong) and the worker is killed; the next comparison starts a fresh
one. Safe to call from any thread (calls are serialised) and after a fork (a forked child starts
its own worker instead of sharing the parent's pipes).
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from .base import TaskError

WORKER_PATH = str(Path(__file__).with_name("_verify_worker.py"))
# Run the worker file by path with the caller's interpreter; drop sys.path[0] (the current
# directory) so nothing there can shadow sympy's imports.
_BOOT = ("import runpy, sys; sys.path.pop(0); sys.argv = sys.argv[1:]; "
         "runpy.run_path(sys.argv[0], run_name='__main__')")


class VerifyWorker:
    """Parent side of one math-verify worker process."""

    def __init__(self, startup_timeout: float = 120.0, memory_limit_mb: int = 4096):
        self.startup_timeout = startup_timeout
        self.memory_limit_mb = memory_limit_mb
        self.starts = 0           # processes started (1 + restarts after timeouts/crashes)
        self.timeouts = 0
        self._proc: subprocess.Popen | None = None
        self._queue: queue.Queue | None = None
        self._pid = os.getpid()
        self._next_id = 0
        self._ready = False
        self._lock = threading.Lock()

    # -- public ----------------------------------------------------------------------------------
    def compare(self, gold: str, pred: str, timeout: float) -> bool | None:
        """math-verify's verdict on `pred` against `gold`: True/False, or None on timeout.
        A crash or an exception inside sympy counts as False."""
        return self.check(gold, pred, timeout)[0]

    def check(self, gold: str, pred: str, timeout: float) -> tuple[bool | None, str]:
        """(verdict as in `compare`, the gold's parse status: "ok", "unparsed", "suspect", or
        "unknown" after a timeout or crash); see `_verify_worker`."""
        with self._lock:
            self._ensure_started()
            self._next_id += 1
            rid = self._next_id
            try:
                self._proc.stdin.write(json.dumps({"id": rid, "gold": gold, "pred": pred}) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._kill()
                return False, "unknown"
            deadline = time.monotonic() + timeout
            while True:
                try:
                    msg = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
                except queue.Empty:
                    self.timeouts += 1
                    self._kill()
                    try:                  # the replacement starts up while the caller goes on
                        self._spawn()
                    except TaskError:
                        pass              # reported by the next compare() that needs it
                    return None, "unknown"
                if msg is None:           # the worker died (e.g. memory limit): wrong, no timeout
                    self._kill()
                    return False, "unknown"
                if msg.get("id") == rid:
                    return bool(msg.get("equal", False)), str(msg.get("gold", "unknown"))

    def close(self) -> None:
        with self._lock:
            self._kill()

    # -- process management ----------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if os.getpid() != self._pid:          # forked: the pipes belong to the parent process
            self._proc, self._queue, self._pid = None, None, os.getpid()
        if self._proc is None or self._proc.poll() is not None:
            self._kill()
            self._spawn()
        if self._ready:
            return
        try:
            first = self._queue.get(timeout=self.startup_timeout)
        except queue.Empty:
            first = {"fatal": f"no answer within {self.startup_timeout:.0f} s"}
        if not first or not first.get("ready"):
            why = (first or {}).get("fatal", "the worker exited at start-up")
            self._kill()
            raise TaskError(f"math-verify worker failed to start ({why}); "
                            f"install math-verify (pip install 'math-verify[antlr4_13_2]')")
        self._ready = True

    def _spawn(self) -> None:
        """Start a worker process without waiting for it to be ready."""
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, WORKER_PATH, str(self.memory_limit_mb)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, encoding="utf-8", bufsize=1, env=env)
        except OSError as e:
            raise TaskError(f"cannot start the math-verify worker ({e})") from None
        q: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, q), daemon=True,
                         name="rise-math-verify-reader").start()
        self._proc, self._queue, self._ready = proc, q, False
        self.starts += 1

    def _kill(self) -> None:
        proc, self._proc, self._queue, self._ready = self._proc, None, None, False
        if proc is None:
            return
        try:
            proc.kill()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


def _pump(stream, q: queue.Queue) -> None:
    """Reader thread: worker stdout lines -> dicts on `q`; None when the worker exits."""
    try:
        for line in stream:
            try:
                q.put(json.loads(line))
            except ValueError:
                continue
    except (OSError, ValueError):
        pass
    q.put(None)


_SHARED: VerifyWorker | None = None
_SHARED_LOCK = threading.Lock()


def shared_worker() -> VerifyWorker:
    """The process-wide worker (created on first use, closed at interpreter exit)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = VerifyWorker()
            atexit.register(_SHARED.close)
        return _SHARED
