"""Scale-out on Ray: the missing chunks of a collect or eval stage run as Ray work on actors that
each hold one engine (loaded once per actor, reused across chunks). `ray` is imported inside
functions only, so `import rise` and the pure core stay free of it
(`pip install 'recursive-introspection[ray]'`). How to run it on a cluster: docs/scaling.md.

The stage's `ChunkStore` on the driver stays the source of truth: the driver asks which chunks
are missing, hands them to the actors and writes each chunk they return with `store.save`, so a
driver started again resumes from the chunks on disk (the actors need no shared file system).
A chunk's seeds depend only on (seed, chunk, turn, purpose) (`derive_seed`), so the output merged
from Ray is byte-identical to one process with the same seed and the same torch threads.

Faults: an actor that dies (its process killed, its node lost) is restarted by Ray
(`max_restarts`) and its chunk is redone, at most `max_retries` times per chunk; the stage's
summary counts the retried chunks. An exception raised by a chunk itself is not retried (it would
fail the same way): bad input (`InputError`, e.g. a problem without a reference solution) ends the
stage with its one line, as in one process, and anything else keeps its traceback.
"""
from __future__ import annotations

import os
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from rise.errors import InputError

# Test hook: the path of a marker file. An actor that finds it missing creates it and dies
# (os._exit) inside its first chunk, so a test can kill an actor mid-chunk exactly once.
CRASH_ONCE_ENV = "RISE_TEST_RAY_CRASH_ONCE"


@dataclass
class RayConfig:
    """Ray: run the stage's missing chunks on actors that each hold one engine (docs/scaling.md)."""

    enabled: bool = False             # run the missing chunks on a Ray cluster (flag: --ray)
    # cluster to join (flag: --ray_address); None: the RAY_ADDRESS environment variable, else a
    # local cluster started for the run with actors x num_cpus CPUs (all CPUs when actors is 0)
    address: str | None = None
    actors: int = 0                   # engine actors (0: as many as the cluster's resources fit)
    num_cpus: float = 1.0             # CPUs per actor; also its torch threads (at least 1)
    num_gpus: float = 0.0             # GPUs per actor (e.g. 1 for an HF or vLLM engine on a GPU)
    max_retries: int = 2              # times a chunk is redone after its actor died; restarts per actor

    def __post_init__(self):
        if self.actors < 0:
            raise InputError(f"ray.actors must be >= 0, got {self.actors}")
        if self.num_cpus < 0 or self.num_gpus < 0 or not (self.num_cpus or self.num_gpus):
            raise InputError(f"ray.num_cpus and ray.num_gpus must be >= 0 and not both 0, "
                             f"got {self.num_cpus}, {self.num_gpus}")
        if self.max_retries < 0:
            raise InputError(f"ray.max_retries must be >= 0, got {self.max_retries}")


def cluster_address(cfg: RayConfig) -> str | None:
    """The cluster a stage joins: ray.address, else RAY_ADDRESS, else None (start a local one)."""
    return cfg.address or os.environ.get("RAY_ADDRESS") or None


def import_ray():
    """The ray module, or the one-line install hint when it is missing."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs ray: pip install 'recursive-introspection[ray]'") from None
    return ray


@contextmanager
def session(cfg: RayConfig) -> Iterator[None]:
    """Connected to Ray for the duration: an existing connection (a test's, `rise run`'s) is
    reused; otherwise join `cluster_address`, or start a local cluster, and leave it at the end."""
    ray = import_ray()

    if ray.is_initialized():
        yield
        return
    address = cluster_address(cfg)
    if address:
        ray.init(address=address)
    else:
        cpus = cfg.actors * cfg.num_cpus if cfg.actors else None
        ray.init(num_cpus=max(1, int(cpus + 0.999)) if cpus else None, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


class ChunkActor:
    """The body of one Ray actor: the stage's worker (`make_worker()`, built on the first chunk;
    it loads its engine when a chunk needs it and keeps it for the next)."""

    def __init__(self, make_worker: Callable[[], Any], threads: int, crash_marker: str | None = None):
        from rise.engines import set_threads

        set_threads(threads)  # Ray sets OMP_NUM_THREADS; torch's own pool is pinned here
        self.make_worker, self.crash_marker, self.worker = make_worker, crash_marker, None

    def ping(self) -> bool:
        return True

    def run(self, *args) -> tuple[Any, dict[str, int], str]:
        """The worker's result for one chunk, with the grader counters it added (summed on the
        driver, since grading happens here and not in the driver's task) and the Ray node it ran on."""
        import ray

        if self.worker is None:
            self.worker = self.make_worker()
        if self.crash_marker and not os.path.exists(self.crash_marker):
            open(self.crash_marker, "w").close()
            os._exit(1)
        before = dict(self.worker.task.grader_stats)
        result = self.worker.run(*args)
        after = self.worker.task.grader_stats
        return (result, {k: v - before.get(k, 0) for k, v in after.items()},
                ray.get_runtime_context().get_node_id())


_PING = object()  # the key of a ping that waits for a restarted actor
# How long a chunk waits for a restarted actor before the pool gives up on that actor. A restart
# after a lost node may find no room (the other actors hold the rest of the cluster), and the
# chunk must not wait forever for it while others could run it.
RESTART_WAIT_S = 120.0


class EnginePool:
    """Actors that each hold one engine, and the loop that hands them chunks.

    Each actor runs one chunk at a time; when it returns, the driver calls `on_done` (which
    writes the chunk) and gives the actor the next one. One progress bar counts the chunks done
    across the cluster."""

    def __init__(self, make_worker: Callable[[], Any], cfg: RayConfig, wanted: int,
                 bar_total: int = 0, bar_done: int = 0, desc: str = "chunks", progress: bool = True):
        import ray

        self.cfg = cfg
        n = actor_count(cfg, wanted, ray.cluster_resources())
        remote = ray.remote(ChunkActor).options(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus,
                                                max_restarts=cfg.max_retries, max_task_retries=0)
        threads = max(1, int(cfg.num_cpus))
        marker = os.environ.get(CRASH_ONCE_ENV) or None
        self.actors = [remote.remote(make_worker, threads, marker) for _ in range(n)]
        self.stats = {"actors": n, "chunks": 0, "retried": 0, "nodes": 0}
        self.nodes: set[str] = set()  # the Ray nodes that ran chunks
        self.restarting: dict = {}     # ping -> (actor, _PING, since) of actors Ray is restarting
        self.grader_stats: Counter = Counter()
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=bar_total, initial=bar_done, desc=f"{desc} (ray, {n} actors)",
                            unit="chunk", dynamic_ncols=True)

    def run(self, jobs: list[tuple[Any, tuple]], on_done: Callable[[Any, Any], None]) -> None:
        """Run every job `(key, args)` as `worker.run(*args)` on some actor; `on_done(key,
        result)` runs on the driver as each finishes (in completion order)."""
        import time

        import ray
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError

        queue, tries = deque(jobs), Counter()
        running = dict(self.restarting)  # pings of actors a previous run() left restarting
        idle = [a for a in self.actors if all(a is not r[0] for r in running.values())]
        # done when no chunk is queued or running (a ping still waiting for a restart is not
        # waited for: close() kills that actor)
        while queue or any(key is not _PING for _, key, _ in running.values()):
            while idle and queue:
                actor = idle.pop()
                key, args = queue.popleft()
                running[actor.run.remote(*args)] = (actor, key, args)
            if not running:
                raise RuntimeError(f"every Ray actor died and none could be restarted; "
                                   f"{len(queue)} chunks left undone")
            ready, _ = ray.wait(list(running), num_returns=1, timeout=5.0)
            if not ready:
                self.give_up_on_slow_restarts(running, time.monotonic())
                continue
            ref = ready[0]
            actor, key, args = running.pop(ref)
            try:
                value = ray.get(ref)
            except RayTaskError as e:  # the chunk itself failed: retrying would fail the same way
                if isinstance(e.cause, InputError):
                    raise e.cause from None
                raise
            except (RayActorError, ObjectLostError):  # the actor died (or the node holding its result)
                if key is _PING:  # its restarts are used up: go on with the others
                    self.actors.remove(actor)
                    continue
                tries[key] += 1
                self.stats["retried"] += 1
                if tries[key] > self.cfg.max_retries:
                    raise RuntimeError(f"chunk {key}: its Ray actor died {tries[key]} times "
                                       f"(ray.max_retries={self.cfg.max_retries})") from None
                queue.appendleft((key, args))
                # the chunk waits for a live actor; this one comes back once Ray restarted it
                running[actor.ping.options(max_task_retries=-1).remote()] = (actor, _PING, time.monotonic())
                continue
            if key is not _PING:
                result, grader_delta, node = value
                self.grader_stats.update(grader_delta)
                self.nodes.add(node)
                self.stats["nodes"] = len(self.nodes)
                on_done(key, result)
                self.stats["chunks"] += 1
                if self.bar is not None:
                    self.bar.update()
            idle.append(actor)
        self.restarting = {ref: entry for ref, entry in running.items() if entry[1] is _PING}

    def give_up_on_slow_restarts(self, running: dict, now: float) -> None:
        """Drop the actors whose restart has taken longer than RESTART_WAIT_S (their chunks are
        already back in the queue for the others)."""
        import ray

        for ref, (actor, key, since) in list(running.items()):
            if key is _PING and now - since > RESTART_WAIT_S:
                print(f"[rise] ray: an actor did not come back within {RESTART_WAIT_S:.0f}s of dying; "
                      "going on without it")
                del running[ref]
                self.actors.remove(actor)
                ray.kill(actor, no_restart=True)

    def close(self) -> None:
        """Kill the actors (their engines' memory, a GPU's included, is freed with them)."""
        import ray

        if self.bar is not None:
            self.bar.close()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


def actor_count(cfg: RayConfig, wanted: int, resources: dict[str, float]) -> int:
    """Actors to start: ray.actors (or as many as the cluster's CPUs/GPUs fit), no more than the
    cluster fits (an actor that cannot be placed would hold its chunk forever) and no more than
    the chunks to run."""
    fits = []
    if cfg.num_cpus:
        fits.append(int(resources.get("CPU", 0) / cfg.num_cpus))
    if cfg.num_gpus:
        fits.append(int(resources.get("GPU", 0) / cfg.num_gpus))
    room = min(fits)
    if room < 1:
        raise InputError(f"the Ray cluster has no room for one actor of {cfg.num_cpus} CPUs and "
                         f"{cfg.num_gpus} GPUs (it has {resources.get('CPU', 0)} CPUs, "
                         f"{resources.get('GPU', 0)} GPUs)")
    if cfg.actors > room:
        print(f"[rise] ray: {cfg.actors} actors asked, the cluster fits {room}; starting {room}")
    return max(1, min(cfg.actors or room, room, wanted))


@contextmanager
def engine_pool(make_worker: Callable[[], Any], cfg: RayConfig, wanted: int, **bar) -> Iterator[EnginePool]:
    """An `EnginePool` inside a Ray `session`, its actors killed at the end."""
    with session(cfg):
        pool = EnginePool(make_worker, cfg, wanted, **bar)
        try:
            yield pool
        finally:
            pool.close()
