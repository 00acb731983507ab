"""Evaluation (the `eval` stage): sequential turns and parallel samples, one loop for both.

Per problem, K samples are drawn at turn 1 (parallel: m{K}@t1, p{K}@t1); sample 0 then goes on
for T turns with the fixed "incorrect" feedback after every turn, whatever the truth, so no oracle
leaks into the prompt (official `workflow_eval.py`). From that one chain come per-turn accuracy,
p1@tT ("with oracle": stop at the first correct turn, i.e. any turn correct) and m1@tT ("without
oracle": majority vote over the T answers).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rise.engines import EngineConfig, derive_seed
from rise.engines.hf import SamplingParams
from rise.episodes import Attempt, EpisodeConfig
from rise.errors import InputError
from rise.ood import EvalTask, check_entries
from rise.ray_exec import RayConfig


@dataclass
class EvalConfig:
    models: dict[str, str] = field(default_factory=dict)   # name -> hub id or local dir
    self_refine: list[str] = field(default_factory=list)    # models also run with Self-Refine prompting
    task: str = "arith"              # rise.tasks name: arith | gsm8k | math
    task_options: dict[str, Any] = field(default_factory=dict)  # options of rise.tasks.get_task
    split: str = "test"              # split the test problems come from
    data_path: str | None = None     # local JSONL/parquet/datasets dir instead of the hub
    limit: int | None = 500          # test problems (None: all)
    turns: int = 5                    # T sequential turns
    parallel: int = 5                 # K samples at turn 1
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    engine: EngineConfig = field(default_factory=EngineConfig)
    seed: int = 1234                 # sampling seed (per chunk and turn)
    chunk_size: int = 256             # problems per resumable chunk
    # oracle feedback tells the model whether each turn was right: its m1@tT is then no longer a
    # no-oracle figure, so it has to be asked for explicitly
    allow_oracle_feedback: bool = False
    # the paper's analyses from the drawn episodes (rise.analysis.eval_analyses: problems solved
    # sequentially but not by pass@B, B <= parallel; edit size between turns): report.md section
    # and analyses.png
    analyses: bool = False
    # refiner rows (GLoRE-style): row name -> refiner model; `refiner_base` answers turn 1 (its
    # episodes are reused, not drawn again), the refiner answers turns 2..T
    refiners: dict[str, str] = field(default_factory=dict)
    refiner_base: str = "base"        # the model whose turn 1 (and parallel samples) refiner rows reuse
    # out of distribution (the paper's Table 3): every row evaluated again on each of these tasks,
    # e.g. [{task: gsm8k, data_path: FILE, limit: 50}], into ood/<name>/ and a section of the report
    tasks: list[EvalTask] = field(default_factory=list)
    ray: RayConfig = field(default_factory=RayConfig)  # the missing chunks on Ray actors instead

    def __post_init__(self):
        if self.episode.feedback == "oracle" and not self.allow_oracle_feedback:
            raise InputError("eval.episode.feedback=oracle leaks the verdict into every later turn; "
                             "set eval.allow_oracle_feedback=true to evaluate that way")
        if self.turns < 1 or self.parallel < 1:
            raise InputError(f"turns and parallel must be >= 1, got {self.turns}, {self.parallel}")
        if self.chunk_size < 1:
            raise InputError(f"chunk_size must be >= 1, got {self.chunk_size}")
        check_entries(self.tasks)


TURN, CRITIQUE = 1, 2           # what an eval generate call is for: the last part of its seed


def _response(task, problem, text: str) -> dict:
    g = task.judge(text, problem)
    key = task.normalize(g.answer) if g.answer is not None else None
    return {"text": text, "answer": key, "reward": g.reward, "extracted_by": g.extracted_by}


def run_episodes(backend, task, problems, cfg: EvalConfig, name: str, progress: bool = True,
                 self_refine: bool = False, chunk: int = 0, start: list[dict] | None = None) -> list[dict]:
    """Eval episode records of one model (schema in docs/design.md).

    self_refine: instead of the feedback line, each later turn first asks the model to critique
    its last answer, then to revise it (two generations per turn, no training).
    start: episodes another model drew for `problems`; `backend` (a separate refiner, GLoRE-style)
    then answers only turns 2..T of chains whose turn 1 and parallel samples are theirs.
    """
    if start is None:
        episodes = first_turns(backend, task, problems, cfg, name, chunk)
    else:
        episodes = [{**ep, "model": name, "turns": ep["turns"][:1]} for ep in start]
    later_turns(backend, task, problems, episodes, cfg, name, chunk, progress, self_refine)
    return episodes


def first_turns(backend, task, problems, cfg: EvalConfig, name: str, chunk: int) -> list[dict]:
    """Episodes holding the K parallel turn-1 samples; the first one opens the chain."""
    convs = [cfg.episode.render(p.question, []) for p in problems]
    first = backend.generate(convs, cfg.parallel, cfg.sampling, derive_seed(cfg.seed, chunk, 1, TURN))
    episodes = []
    for p, texts in zip(problems, first, strict=True):
        par = [_response(task, p, t) for t in texts]
        episodes.append({"model": name, "problem_id": p.id, "question": p.question, "gold": p.answer,
                         "parallel": par, "turns": [par[0]]})
    return episodes


def later_turns(backend, task, problems, episodes, cfg: EvalConfig, name: str, chunk: int,
                progress: bool = True, self_refine: bool = False) -> None:
    """Turns 2..T of each chain, appended to `episodes` in place."""
    from tqdm.auto import tqdm

    for turn in tqdm(range(2, cfg.turns + 1), desc=f"eval {name}", unit="turn", disable=not progress):
        if self_refine:
            convs = self_refine_states(backend, problems, episodes, cfg,
                                       derive_seed(cfg.seed, chunk, turn, CRITIQUE))
        else:
            convs = [cfg.episode.render(p.question, [Attempt(r["text"], r["answer"], r["reward"]) for r in ep["turns"]])
                     for p, ep in zip(problems, episodes, strict=True)]
        outs = backend.generate(convs, 1, cfg.sampling, derive_seed(cfg.seed, chunk, turn, TURN))
        for p, ep, texts in zip(problems, episodes, outs, strict=True):
            ep["turns"].append(_response(task, p, texts[0]))


def self_refine_states(backend, problems, episodes, cfg: EvalConfig, seed: int) -> list[list[dict]]:
    """States for a Self-Refine turn: question, last answer, the model's own critique, revise request."""
    from rise.prompts import get_preset

    preset = get_preset(cfg.episode.preset)
    asked = [[*cfg.episode.render(p.question, []), {"role": "assistant", "content": ep["turns"][-1]["text"]},
              {"role": "user", "content": preset.critique}] for p, ep in zip(problems, episodes, strict=True)]
    critiques = backend.generate(asked, 1, cfg.sampling, seed)
    states = []
    for p, ep, conv, crit in zip(problems, episodes, asked, critiques, strict=True):
        ep["turns"][-1]["critique"] = crit[0]
        states.append([*conv, {"role": "assistant", "content": crit[0]},
                       {"role": "user", "content": preset.revise.format(question=p.question)}])
    return states


class EvalWorker:
    """One engine at a time for the rows of an evaluation, in one process or one Ray actor: a
    row's model loads when one of its chunks is missing (a resumed eval may need none), and the
    previous model's engine is freed first."""

    def __init__(self, cfg: EvalConfig, task=None, progress: bool = False):
        from rise.tasks import get_task

        self.cfg, self.progress = cfg, progress
        self.task = task if task is not None else get_task(cfg.task, **cfg.task_options)
        self.model, self.backend = None, None

    def run(self, row: str, model: str, kwargs: dict, part: list, chunk: int) -> list[dict]:
        """The episodes of one chunk of one row (`kwargs`: run_episodes' row arguments)."""
        from rise.engines import open_backend

        if self.model != model:
            self.close()
            self.backend = open_backend(model, self.cfg.engine, progress="generate" if self.progress else False)
            self.model = model
        return run_episodes(self.backend, self.task, part, self.cfg, row, self.progress, chunk=chunk, **kwargs)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
        self.model, self.backend = None, None


def row_jobs(cfg: EvalConfig, store, parts: list, row: str, model: str, kwargs: dict) -> list[tuple]:
    """(chunk index, EvalWorker.run arguments) of a row's missing chunks; a refiner row continues
    the chains its base row left in the store."""
    jobs = []
    for i, part in enumerate(parts):
        if not store.has(row, i):
            kw = dict(kwargs)
            if "start_from" in kw:
                kw["start"] = store.load(kw.pop("start_from"), i)
            jobs.append((i, (row, model, kw, part, i)))
    return jobs


def run_eval(cfg: EvalConfig, out_dir: str | Path, progress: bool = True, extra: dict | None = None,
             notes: list[str] | None = None) -> dict:
    """Evaluate every model in cfg.models; write episodes.jsonl and the report (with `notes`, e.g.
    how the models' training data was collected). Returns metrics."""
    from rise.config import to_dict
    from rise.metrics import episode_metrics
    from rise.records import write_json, write_jsonl
    from rise.resume import ChunkStore, begin_stage, chunked, config_fingerprint

    if not cfg.models:
        raise InputError("eval.models: no model to evaluate")
    if cfg.tasks:
        return run_eval_ood(cfg, out_dir, progress, extra, notes)
    out = Path(out_dir)
    task, problems = begin_stage(out, cfg)
    all_eps, results, by_row = [], {}, {}
    check_rows(cfg)
    store = ChunkStore(out / "chunks", config_fingerprint(cfg))
    parts = chunked(problems, cfg.chunk_size)
    timings: dict[str, float] = {}  # kept out of report.json so that metrics are byte-identical per seed
    with eval_runner(cfg, task, store, parts, progress) as (run_row, ray_stats):
        for row, model, kwargs in eval_rows(cfg):
            t0 = time.perf_counter()
            run_row(row_jobs(cfg, store, parts, row, model, kwargs))
            eps = [ep for i in range(len(parts)) for ep in store.load(row, i)]
            all_eps.extend(eps)
            by_row[row] = eps
            results[row] = {**episode_metrics(eps), "meta": {"episode": to_dict(cfg.episode)}}
            timings[row] = time.perf_counter() - t0
    write_jsonl(out / "episodes.jsonl", all_eps)
    if cfg.analyses:
        from rise.analysis import eval_analyses

        for row, found in eval_analyses(by_row).items():
            results[row]["analyses"] = found
    for name, extra_fields in (extra or {}).items():
        results.setdefault(name, {}).update(extra_fields)
    stats = dict(task.grader_stats)
    if ray_stats:  # the actors graded: their counts add to the driver's
        for k, v in ray_stats.pop("grader_stats").items():
            stats[k] = stats.get(k, 0) + v
        write_json(out / "ray.json", ray_stats)
    write_json(out / "grader_stats.json", stats)
    write_eval_report(out, cfg, results, all_eps, stats, len(problems), notes)
    write_json(out / "timings.json", timings)
    write_json(out / "models.json", {**cfg.models, **cfg.refiners})
    store.remove()
    return results


def write_eval_report(out: Path, cfg: EvalConfig, results: dict, episodes: list[dict], stats: dict,
                      n: int, notes: list[str] | None = None) -> None:
    """report.json, report.md and the plots of an evaluation of `n` problems."""
    from rise.report import write_report

    write_report(out, results, title=f"RISE evaluation on {cfg.task} ({cfg.split}, n={n})",
                 notes=grader_notes(stats) + list(notes or []),
                 transcripts=wrong_to_right_examples(episodes, limit=3))


def run_eval_ood(cfg: EvalConfig, out_dir: str | Path, progress: bool = True, extra: dict | None = None,
                 notes: list[str] | None = None) -> dict:
    """`rise eval` with eval.tasks: the evaluation without them, then each entry's own
    (rise.ood), then the main report again with their section. Each part resumes on its own."""
    import copy

    from rise import ood

    ood.preflight(cfg, cfg.tasks)  # every entry's data loads before the first model does
    main = copy.deepcopy(cfg)
    main.tasks = []
    run_eval(main, out_dir, progress, extra, notes)
    configs = ood.entry_configs(main, cfg.tasks)
    for label, ev in configs.items():
        run_eval(ev, ood.entry_dir(out_dir, label), progress)
    return add_ood_report(main, out_dir, configs, notes)


def add_ood_report(cfg: EvalConfig, out_dir: str | Path, configs: dict[str, EvalConfig],
                   notes: list[str] | None = None) -> dict:
    """Rewrite the report of the finished evaluation `cfg` in `out_dir` with the out-of-distribution
    metrics of `configs` (rise.ood.entry_configs, evaluated in ood/<name>/) under each row's "ood";
    an earlier section is replaced, so this is the same report whenever it runs. Returns it."""
    import json

    from rise import ood
    from rise.records import read_jsonl

    out = Path(out_dir)
    saved = json.loads((out / "report.json").read_text())
    results = {}
    for row, r in sorted(saved.items(), key=lambda kv: kv[1]["meta"]["order"]):
        results[row] = {k: v for k, v in r.items() if k != "ood"}
    for row, found in ood.gather(out, configs).items():
        if row in results:
            results[row]["ood"] = found
    stats = json.loads((out / "grader_stats.json").read_text())
    episodes = list(read_jsonl(out / "episodes.jsonl"))
    write_eval_report(out, cfg, results, episodes, stats, next(iter(results.values()))["n"], notes)
    return results
@contextmanager
def eval_runner(cfg: EvalConfig, task, store, parts: list, progress: bool):
    """(run_row, ray_stats): run_row(jobs) computes and saves a row's missing chunks (`row_jobs`),
    in this process or, with eval.ray, on one pool of Ray actors that every row shares (one
    progress bar over all rows' chunks); ray_stats receives the pool's counts at the end."""
    from functools import partial

    missing = {row: sum(not store.has(row, i) for i in range(len(parts))) for row, _, _ in eval_rows(cfg)}
    ray_stats: dict = {}
    if not (cfg.ray.enabled and any(missing.values())):
        worker = EvalWorker(cfg, task, progress)

        def run_here(jobs):
            for i, args in jobs:
                store.save(args[0], i, worker.run(*args))
        try:
            yield run_here, ray_stats
        finally:
            worker.close()
        return
    from rise.ray_exec import engine_pool

    total = len(parts) * len(missing)
    bar = dict(bar_total=total, bar_done=total - sum(missing.values()), desc="eval", progress=progress)
    with engine_pool(partial(EvalWorker, cfg), cfg.ray, max(missing.values()), **bar) as pool:
        def run_on_ray(jobs):  # keyed (row, chunk): the driver writes each chunk it gets back
            pool.run([((args[0], i), args) for i, args in jobs], lambda key, eps: store.save(*key, eps))
        yield run_on_ray, ray_stats
        ray_stats.update(pool.stats, grader_stats=dict(pool.grader_stats))


def eval_rows(cfg: EvalConfig):
    """(row name, model to load, run_episodes arguments) of every row of the report, in order:
    each model, then its Self-Refine row, then the refiner rows.

    A Self-Refine row starts from its model's own turn 1 and parallel samples: they are drawn
    with the same seeds by the same model, so they equal what the row would draw again, and
    reusing them saves a turn-1 pass (parallel x problems samples) per Self-Refine row."""
    for name, model in cfg.models.items():
        yield name, model, {}
        if name in cfg.self_refine:
            yield f"{name}+self-refine", model, {"self_refine": True, "start_from": name}
    for row, refiner in cfg.refiners.items():
        yield row, refiner, {"start_from": cfg.refiner_base}


def check_rows(cfg: EvalConfig) -> None:
    """Self-Refine and refiner rows name evaluated models; row names are unique."""
    unknown = [n for n in cfg.self_refine if n not in cfg.models]
    if unknown:
        raise InputError(f"eval.self_refine names {', '.join(unknown)}, not among eval.models")
    if cfg.refiners and cfg.refiner_base not in cfg.models:
        raise InputError(f"eval.refiner_base {cfg.refiner_base!r} (turn 1 of the refiner rows) "
                         "is not among eval.models")
    clash = [r for r in cfg.refiners if r in cfg.models or r.endswith("+self-refine")]
    if clash:
        raise InputError(f"eval.refiners: row name {clash[0]!r} is already a row of the report")


def grader_notes(stats: dict[str, int]) -> list[str]:
    """Report lines for answers the grader refused to compare (too long, too complex, timed out):
    they count as wrong, and a reader should know how many there were."""
    notes = []
    hostile = {k: stats.get(k, 0) for k in ("timeouts", "too_long", "too_complex")}
    if any(hostile.values()):
        notes.append("Answers graded wrong without a full comparison (graded in this run, also on Ray actors; resumed "
                     "chunks are not re-graded): " + ", ".join(f"{k} {v}" for k, v in hostile.items()))
    gold = {k: stats.get(k, 0) for k in ("gold_unparsed", "gold_suspect")}
    if any(gold.values()):
        notes.append("Gold answers whose parse did not round-trip, compared as normalised strings only "
                     "(never made a wrong answer right): " + ", ".join(f"{k} {v}" for k, v in gold.items()))
    return notes


def wrong_to_right_examples(episodes: list[dict], limit: int = 3) -> list[dict]:
    """A few real chains that start wrong and turn right at a later turn, for the report: RISE
    models' first (they are what the report is about), then the others, each in file order."""
    ranked = sorted(episodes, key=lambda ep: not str(ep["model"]).startswith("rise"))  # stable
    out = []
    for ep in ranked:
        rewards = [t["reward"] for t in ep["turns"]]
        if rewards[0] != 1.0 and 1.0 in rewards[1:]:
            out.append(ep)
            if len(out) >= limit:
                break
    return out
