"""Data collection (the `collect` stage): multi-turn rollouts with improved responses.

For each training problem the current policy answers for up to `turns` turns (paper, Sec. 4.2;
official `workflow_gen.py`). At every state whose on-policy samples all fail, an *improved*
response is added as a candidate:
  reference  the dataset's worked solution (distillation from an oracle),
  teacher    samples of a teacher model (distillation),
  self       the best of `best_of` samples of the policy itself at that state (self-distillation).
The best candidate by reward is the state's training target (`action`). The conversation goes on
with the on-policy sample (`continue_with: policy`, the paper's on-policy states) or with the
action (`continue_with: action`, the official code). A rollout stops at its first success.

Official collection schedules: `samples`, `turn_models` and `temperature` take one value per turn
(or one value for all turns): `--samples 1 16` (official `--num_of_samples 1 16`: best of 16 at
turn 2), `--turn_models policy TEACHER` (official `--models A B`: a teacher draws turn 2's
samples, which then are that turn's candidates, with `improve none`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rise.engines import EngineConfig, derive_seed
from rise.engines.hf import SamplingParams
from rise.episodes import Attempt, EpisodeConfig
from rise.errors import InputError
from rise.ray_exec import RayConfig

IMPROVE_MODES = ("none", "reference", "teacher", "self")


@dataclass
class CollectConfig:
    policy: str = ""                  # model that rolls out (hub id or local dir)
    task: str = "arith"              # rise.tasks name: arith | gsm8k | math
    task_options: dict[str, Any] = field(default_factory=dict)  # options of rise.tasks.get_task
    split: str = "train"             # split the training problems come from
    data_path: str | None = None      # local JSONL/parquet/datasets dir instead of the hub
    limit: int | None = 2000          # training problems
    turns: int = 5                    # k: maximum turns of a rollout
    samples: int | list[int] = 1      # samples per state, one value or one per turn (official --num_of_samples)
    # the model drawing each turn's samples, one per turn (official --models); "policy" (or
    # none given) is collect.policy; others load with `engine`
    turn_models: list[str] = field(default_factory=list)
    temperature: float | list[float] | None = None  # per turn (one value or one per turn); None: sampling.temperature
    improve: str = "reference"        # none | reference | teacher | self
    best_of: int = 8                  # N for improve=self; samples for improve=teacher
    teacher: str | None = None        # model for improve=teacher
    teacher_temperature: float = 0.7  # official teacher temperature
    improve_first_turn: bool = False  # also improve failed first turns (single-turn SFT signal)
    continue_with: str = "policy"     # policy | action
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    engine: EngineConfig = field(default_factory=EngineConfig)
    teacher_engine: EngineConfig = field(default_factory=EngineConfig)  # e.g. openai for a served teacher
    seed: int = 0                    # sampling seed (per chunk and turn)
    chunk_size: int = 256             # problems per resumable chunk (a restart skips finished chunks)
    # data parallel: run shard_index 0..num_shards-1 (one per GPU), then once more with
    # num_shards 1 to merge the chunks
    num_shards: int = 1               # processes the problems are split over (1: no sharding / merge)
    shard_index: int = 0              # which shard this process runs, 0..num_shards-1
    ray: RayConfig = field(default_factory=RayConfig)  # the missing chunks on Ray actors instead

    def __post_init__(self):
        if self.improve not in IMPROVE_MODES:
            raise InputError(f"improve must be one of {', '.join(IMPROVE_MODES)}, got {self.improve!r}")
        if self.continue_with not in ("policy", "action"):
            raise InputError(f"continue_with must be 'policy' or 'action', got {self.continue_with!r}")
        if self.improve == "teacher" and not self.teacher:
            raise InputError("improve=teacher needs a teacher model (collect.teacher)")
        if not 0 <= self.shard_index < self.num_shards:
            raise InputError(f"shard_index must be in [0, num_shards), got {self.shard_index} of {self.num_shards}")
        for name in ("turns", "best_of", "chunk_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        schedules = {"samples": (self.samples, lambda v: v >= 1, ">= 1"),
                     "temperature": (self.temperature, lambda v: v >= 0, ">= 0"),
                     "turn_models": (self.turn_models or None, bool, "a model name or 'policy'")}
        for name, (value, ok, what) in schedules.items():
            bad = [v for v in per_turn(value, self.turns, name) if v is not None and not ok(v)]
            if bad:
                raise InputError(f"collect.{name} must be {what} at every turn, got {bad[0]!r}")

    def samples_at(self, turn: int) -> int:
        return per_turn(self.samples, self.turns, "samples")[turn - 1]

    def model_at(self, turn: int) -> str:
        """The model drawing turn `turn`'s samples (collect.policy unless turn_models names another)."""
        models = per_turn(self.turn_models or None, self.turns, "turn_models")
        m = models[turn - 1]
        return self.policy if m in (None, "policy") else m

    def sampling_at(self, turn: int):
        import dataclasses

        t = per_turn(self.temperature, self.turns, "temperature")[turn - 1]
        return self.sampling if t is None else dataclasses.replace(self.sampling, temperature=t)

    def other_models(self) -> list[str]:
        """The per-turn models other than the policy, in turn order, each once."""
        return list(dict.fromkeys(m for t in range(1, self.turns + 1) if (m := self.model_at(t)) != self.policy))


def per_turn(value, turns: int, name: str) -> list:
    """A per-turn setting as one value per turn 1..turns: a scalar (or a one-element list) holds
    for every turn, a list needs exactly one value per turn."""
    if not isinstance(value, (list, tuple)):
        return [value] * turns
    if len(value) == 1:
        return list(value) * turns
    if len(value) != turns:
        from rise.config import ConfigError

        raise ConfigError(f"collect.{name} has {len(value)} values for collect.turns={turns}; "
                          "give one value, or one per turn")
    return list(value)


def best_index(cands: list[dict]) -> int:
    """Index of the highest-reward candidate; the first wins ties (on-policy samples come first)."""
    return max(range(len(cands)), key=lambda i: (cands[i]["reward"], -i))


def graded(task, problem, texts: list[str], source: str) -> list[dict]:
    out = []
    for text in texts:
        g = task.judge(text, problem)
        out.append({"text": text, "answer": g.answer, "reward": g.reward, "extracted_by": g.extracted_by,
                    "source": source})
    return out


# what a generate call of collection is for: the last part of its seed (`call_seed`)
SAMPLE, SELF_IMPROVE, TEACHER = 1, 2, 3


def call_seed(seed: int, turn: int, purpose: int, chunk: int = 0) -> int:
    """The seed of collection's generate call for (chunk, turn, purpose): `derive_seed`, the one
    seed scheme of every stage (a chunk's samples do not depend on the other chunks)."""
    return derive_seed(seed, chunk, turn, purpose)


def improved_candidates(cfg: CollectConfig, task, problems, convs, turn, policy, teacher, chunk=0) -> list[list[dict]]:
    """Improved responses for the failed states `convs` (one list per problem)."""
    if cfg.improve == "reference":
        out = []
        for p in problems:
            if not p.solution:
                raise InputError(f"problem {p.id}: improve=reference needs a reference solution")
            out.append(graded(task, p, [p.solution], "reference"))
        return out
    if cfg.improve == "self":
        texts = policy.generate(convs, cfg.best_of, cfg.sampling, call_seed(cfg.seed, turn, SELF_IMPROVE, chunk))
        return [graded(task, p, ts, f"self@{cfg.best_of}") for p, ts in zip(problems, texts, strict=True)]
    params = SamplingParams(cfg.teacher_temperature, cfg.sampling.top_p, cfg.sampling.max_new_tokens)
    texts = teacher.generate(convs, cfg.best_of, params, call_seed(cfg.seed, turn, TEACHER, chunk))
    from rise.engines import describe

    source = f"teacher:{describe(cfg.teacher, cfg.teacher_engine)}"
    return [graded(task, p, ts, source) for p, ts in zip(problems, texts, strict=True)]


def rollouts(cfg: CollectConfig, task, problems, policy, teacher=None, chunk: int = 0,
             others: dict | None = None) -> list[dict]:
    """Roll out `problems` (one chunk) in lock-step, turn by turn (batched across problems).
    `others`: {model: backend} of the per-turn models other than the policy (`turn_models`)."""
    attempts: dict[str, list[Attempt]] = {p.id: [] for p in problems}
    records: list[dict] = []
    active = list(problems)
    for turn in range(1, cfg.turns + 1):
        if not active:
            break
        convs = [cfg.episode.render(p.question, attempts[p.id]) for p in active]
        drawer, source, n = turn_drawer(cfg, turn, policy, others)
        samples = drawer.generate(convs, n, cfg.sampling_at(turn), call_seed(cfg.seed, turn, SAMPLE, chunk))
        cands = [graded(task, p, ts, source) for p, ts in zip(active, samples, strict=True)]
        wants = cfg.improve != "none" and (turn > 1 or cfg.improve_first_turn)
        failed = [i for i, c in enumerate(cands) if wants and max(x["reward"] for x in c) < 1.0]
        if failed:
            extra = improved_candidates(cfg, task, [active[i] for i in failed], [convs[i] for i in failed],
                                        turn, policy, teacher, chunk)
            for i, more in zip(failed, extra, strict=True):
                cands[i] = cands[i] + more
        still = []
        for p, conv, c in zip(active, convs, cands, strict=True):
            action = c[best_index(c)]
            on_policy = c[best_index(c[:n])]
            nxt = action if cfg.continue_with == "action" else on_policy
            done = nxt["reward"] == 1.0 or turn == cfg.turns
            records.append({"problem_id": p.id, "rollout": 0, "turn": turn, "gold": p.answer,
                            "messages": conv, "candidates": c, "action": action, "next": nxt,
                            "done": done})
            attempts[p.id].append(Attempt(nxt["text"], nxt["answer"], nxt["reward"]))
            if not done:
                still.append(p)
        active = still
    return records


def turn_drawer(cfg: CollectConfig, turn: int, policy, others: dict | None):
    """(backend, source label, sample count) of turn `turn`'s samples."""
    model = cfg.model_at(turn)
    if model == cfg.policy:
        return policy, "policy", cfg.samples_at(turn)
    from rise.engines import describe

    return (others or {})[model], f"model:{describe(model, cfg.engine)}", cfg.samples_at(turn)


def rollout_summary(records: list[dict]) -> dict[str, Any]:
    """Counts a person wants to see: states, improved states, success per turn."""
    by_turn: dict[int, list[dict]] = {}
    for r in records:
        by_turn.setdefault(r["turn"], []).append(r)
    return {
        "records": len(records),
        "rollouts": len({(r["problem_id"], r.get("rollout", 0)) for r in records}),
        "per_turn": {t: {"states": len(rs),
                         "policy_success": sum(r["next"]["reward"] == 1.0 for r in rs) / len(rs),
                         "action_success": sum(r["action"]["reward"] == 1.0 for r in rs) / len(rs)}
                     for t, rs in sorted(by_turn.items())},
    }


class CollectWorker:
    """The engines one process (or one Ray actor) collects with: opened on the first chunk that
    needs them (a merge run opens none) and reused for every later chunk."""

    def __init__(self, cfg: CollectConfig, task=None, progress: bool = False):
        from rise.tasks import get_task

        self.cfg, self.progress = cfg, progress
        self.task = task if task is not None else get_task(cfg.task, **cfg.task_options)
        self.policy = self.teacher = None
        self.others: dict = {}

    def run(self, part: list, chunk: int) -> list[dict]:
        """The rollout records of one chunk of problems."""
        from rise.engines import open_backend

        cfg = self.cfg
        if self.policy is None:
            self.policy = open_backend(cfg.policy, cfg.engine, progress="generate" if self.progress else False)
            if cfg.improve == "teacher":
                self.teacher = open_backend(cfg.teacher, cfg.teacher_engine)
            self.others = {m: open_backend(m, cfg.engine) for m in cfg.other_models()}
        return rollouts(cfg, self.task, part, self.policy, self.teacher, chunk=chunk, others=self.others)

    def close(self) -> None:
        """Free the engines (a vLLM engine holds its GPU memory)."""
        for backend in (self.policy, self.teacher, *self.others.values()):
            if backend is not None:
                backend.close()
        self.policy = self.teacher = None
        self.others = {}


def run_collect(cfg: CollectConfig, out_dir: str | Path, progress: bool = True) -> Path:
    """Collect rollouts for `cfg` into out_dir/rollouts.jsonl (+ config.yaml, summary.json)."""
    from functools import partial

    from rise.records import write_json, write_jsonl
    from rise.resume import ChunkStore, begin_stage, chunked, config_fingerprint

    if not cfg.policy:
        raise InputError("collect.policy: no policy model given")
    out = Path(out_dir)
    task, problems = begin_stage(out, cfg)
    t0 = time.perf_counter()
    # shards share one chunk store: the sharding settings are left out of its fingerprint
    store = ChunkStore(out / "chunks", config_fingerprint(cfg, ("num_shards", "shard_index")))
    parts = chunked(problems, cfg.chunk_size)
    # a merge run (num_shards 1) also completes any chunk a shard left unfinished
    mine = [i for i in range(len(parts)) if i % cfg.num_shards == cfg.shard_index]
    missing = [i for i in mine if not store.has("rollouts", i)]
    ray_stats = None
    if cfg.ray.enabled and missing:
        from rise.ray_exec import engine_pool

        bar = dict(bar_total=len(mine), bar_done=len(mine) - len(missing), desc="collect", progress=progress)
        with engine_pool(partial(CollectWorker, cfg), cfg.ray, len(missing), **bar) as pool:
            pool.run([(i, (parts[i], i)) for i in missing], partial(store.save, "rollouts"))
            ray_stats = pool.stats
    else:
        from tqdm.auto import tqdm

        worker = CollectWorker(cfg, task, progress)
        try:
            for i in tqdm(mine, desc="collect", unit="chunk", disable=not progress):
                if i in missing:
                    store.save("rollouts", i, worker.run(parts[i], i))
        finally:
            worker.close()
    if cfg.num_shards > 1:
        print(f"[rise] collect shard {cfg.shard_index}/{cfg.num_shards}: {len(mine)} chunks in {store.root}")
        return store.root
    records = [rec for i in range(len(parts)) for rec in store.load("rollouts", i)]
    path = out / "rollouts.jsonl"
    write_jsonl(path, records)
    summary = rollout_summary(records) | {"wall_s": time.perf_counter() - t0}
    if ray_stats is not None:
        summary["ray"] = ray_stats
    write_json(out / "summary.json", summary)
    store.remove()
    return path
