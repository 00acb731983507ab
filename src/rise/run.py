"""The main job (`rise run`): base model -> RISE iterations (collect -> train) -> evaluation.

Layout under --out:
    base -> (path of the base model, in base.txt)
    boost/data/rollouts.jsonl, boost/train/checkpoint (with boost.problems > 0: rise.boost's
        single-turn SFT of the base, which is then the run's base)
    probe/{alone,multi_turn}.jsonl (with nll_probe > 0: rise.probe's NLL probe, scored in training)
    iter1/collect/{rollouts.jsonl, summary.json, config.yaml}
    iter1/train/{examples.jsonl, checkpoint/, train_stats.json, config.yaml}
    classic/train/..., glore/train/... (the baselines Classic SFT and the GLoRE-style refiner)
    eval/{episodes.jsonl, report.json, report.md, accuracy_by_turn.png, flows_by_turn.png, config.yaml}
    eval/ood/<name>/... (with eval.tasks: each extra task's own evaluation, rise.ood)
    config.yaml (the resolved run config), timings.json (wall time of each stage)
A stage whose output is complete (a `done.json` beside it, for the same config and the same
content of the artifacts it reads) is reused, so an interrupted run started again continues at
the first unfinished stage, and a change anywhere re-runs exactly the stages downstream of it.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rise.boost import BoostConfig
from rise.collect import CollectConfig
from rise.convert import ConvertConfig
from rise.embedded import CPU_ARITH_OPTIONS
from rise.engines.hf import SamplingParams
from rise.errors import InputError
from rise.evaluate import EvalConfig
from rise.pretrain import PretrainConfig
from rise.ray_exec import RayConfig
from rise.train import TrainConfig

# Defaults of the main job, sized for the embedded default on a 2-core CPU (arith solutions are
# ~50 tokens; the official 1000-token budget would only let a small model ramble). Every field is
# a flag or a YAML key: `rise run --set train.lr=1e-4`.
# Chunks of 1000 training / 512 test problems: each turn's generate call then holds every state of
# a chunk (or all 500 test problems), and fuller batches ran 8-12% faster here than chunks of 256
# (a killed run still resumes at a chunk).
_SHORT = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=96)
EMBEDDED_COLLECT = dict(limit=2000, turns=5, improve="reference", improve_first_turn=True, sampling=_SHORT,
                        chunk_size=1000)
EMBEDDED_TRAIN = dict(lr=1e-3, epochs=2.0, batch_size=16, micro_batch_tokens=4096)
EMBEDDED_EVAL = dict(limit=500, turns=5, parallel=5, sampling=_SHORT, analyses=True, chunk_size=512)


@dataclass
class RunConfig:
    base: str = "embedded"            # "embedded" (made offline, cached) or a hub id / local dir
    task: str = "arith"               # applied to pretrain (embedded base), collect and eval
    # None: the task's defaults, and for arith the difficulty the embedded base learns on a CPU
    # (rise.embedded.CPU_ARITH_OPTIONS)
    task_options: dict[str, Any] | None = None
    train_data: str | None = None     # local file for training problems (default: the task's own)
    test_data: str | None = None      # local file for test problems
    iterations: int = 1               # RISE iterations (collect with the newest model, train it)
    improve_schedule: list[str] = field(default_factory=list)  # per-iteration collect.improve, e.g. [reference, self]
    # the model trained on iteration 1's rollouts, when not the base that collects them (the
    # paper's Llama-2 rollouts training Mistral): a hub id, a local dir or "embedded"; evaluated
    # untrained as "student"; later iterations collect with its checkpoint
    student: str | None = None
    classic: bool = True              # baseline: single-turn SFT of the trained model on iteration 1's data
    self_refine: bool = True          # baseline: the base with Self-Refine prompting
    # baseline: a GLoRE-style refiner (Havrilla et al. 2024), the base fine-tuned on iteration 1's
    # data to improve a given wrong answer (convert.mode refiner); evaluated as the base at turn 1
    # and the refiner at turns 2..T. Kept cheap: the first refinement of each rollout only
    # (glore_max_turn), glore_epochs of training.
    glore: bool = True
    glore_max_turn: int | None = 2    # refiner examples from turns 2..this (None: every turn)
    glore_epochs: float = 1.0         # epochs of refiner training
    # analysis (a): score the reference's NLL with and without a wrong attempt in context over
    # training, on this many held-out problems of `probe_split` the base gets wrong (0: off)
    nll_probe: int = 0
    probe_split: str = "validation"  # split the NLL probe's problems come from
    threads: int | None = None        # torch CPU threads
    chat_template: str | None = None  # Jinja string or file, for a base whose tokenizer has none
    seed: int = 0                    # seeds every stage (iteration k: seed * 1000 + k)
    # collection and evaluation on Ray (both stages get this section; training stays in this
    # process with accelerate: docs/scaling.md)
    ray: RayConfig = field(default_factory=RayConfig)
    # the paper's boost step (rise.boost): single-turn SFT of the base on reference solutions
    # before RISE, for a base that does not yet answer the task; the boosted model is the base
    boost: BoostConfig = field(default_factory=BoostConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    collect: CollectConfig = field(default_factory=lambda: CollectConfig(**EMBEDDED_COLLECT))
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**EMBEDDED_TRAIN))
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(**EMBEDDED_EVAL))

    def __post_init__(self):
        if self.iterations < 0:
            raise InputError(f"iterations must be >= 0, got {self.iterations}")
        from rise.collect import IMPROVE_MODES

        bad = [m for m in self.improve_schedule if m not in IMPROVE_MODES]
        if bad:
            raise InputError(f"improve_schedule: unknown mode {bad[0]!r}; known: {', '.join(IMPROVE_MODES)}")
        if self.glore_max_turn is not None and self.glore_max_turn < 2:
            raise InputError(f"glore_max_turn must be >= 2 (turn 1 has no answer to refine), got {self.glore_max_turn}")
        if not self.glore_epochs > 0:
            raise InputError(f"glore_epochs must be > 0, got {self.glore_epochs}")
        if self.nll_probe < 0:
            raise InputError(f"nll_probe must be >= 0, got {self.nll_probe}")
        check_derived_keys(self)


# Keys of the stage sections that `rise run` sets itself: a value given for one would be
# overwritten, so it is refused, naming the run-level key to set instead.
DERIVED_KEYS = {
    "collect.policy": "base (iteration 1) or the previous iteration's checkpoint",
    "collect.task": "task", "collect.task_options": "task_options", "collect.seed": "seed",
    "train.seed": "seed",
    "eval.models": "base (plus the trained models rise run adds)", "eval.task": "task",
    "eval.task_options": "task_options", "eval.self_refine": "self_refine",
    "eval.refiners": "glore", "eval.refiner_base": "glore (the refiner continues the base's chains)",
    "pretrain.task": "task", "pretrain.task_options": "task_options",
    "collect.ray": "ray", "eval.ray": "ray",
}


def check_derived_keys(cfg: "RunConfig") -> None:
    """Refuse a derived key whose value is not the section's untouched default (so a run's own
    saved config.yaml, which holds those defaults, loads again)."""
    from rise.config import ConfigError

    fresh = {"collect": CollectConfig(), "train": TrainConfig(), "eval": EvalConfig(), "pretrain": PretrainConfig()}
    for dotted, instead in DERIVED_KEYS.items():
        section, key = dotted.split(".")
        if getattr(getattr(cfg, section), key) != getattr(fresh[section], key):
            raise ConfigError(f"{dotted} is set by rise run; set {instead} instead")


def config_hash(cfg: Any) -> str:
    """The hash of a stage's config; where the stage runs (its `ray` section) is left out, so a
    stage finished on Ray is reused by a run without, and back."""
    from rise.resume import config_fingerprint

    return config_fingerprint(cfg)


def stage_key(cfg: Any, inputs: list) -> dict[str, str]:
    """What a finished stage is valid for: its own config and the content of its inputs."""
    from rise.resume import content_fingerprint

    return {"config": config_hash(cfg), "inputs": content_fingerprint(inputs)}


def stage_done(stage_dir: Path, key: dict[str, str]) -> bool:
    marker = stage_dir / "done.json"
    if not marker.is_file():
        return False
    try:
        prev = json.loads(marker.read_text())
    except ValueError:
        return False
    return all(prev.get(k) == v for k, v in key.items())


def mark_done(stage_dir: Path, key: dict[str, str], wall_s: float) -> None:
    from rise.records import write_json

    write_json(stage_dir / "done.json", {**key, "wall_s": wall_s})


def clear_stale_progress(stage_dir: Path, key: dict[str, str]) -> None:
    """A killed stage leaves resumable progress (finished chunks, a training state). It may be
    resumed only by a run with the same key: chunk stores and training states fingerprint their
    own config, not the upstream model they were started from. `pending.json` names the key the
    progress belongs to; progress of another key is removed."""
    import shutil

    from rise.records import write_json

    pending = stage_dir / "pending.json"
    try:
        same = json.loads(pending.read_text()) == key
    except (OSError, ValueError):
        same = False
    if not same:
        for name in ("chunks", "train_state"):
            shutil.rmtree(stage_dir / name, ignore_errors=True)
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_json(pending, key)


def _stage(name: str, stage_dir: Path, cfg: Any, fn, timings: dict[str, float], inputs: list) -> None:
    """Run `fn()` unless the stage is already complete for this config and these inputs (paths of
    the upstream artifacts it reads, or model names); record its wall time."""
    key = stage_key(cfg, inputs)
    if stage_done(stage_dir, key):
        prev = json.loads((stage_dir / "done.json").read_text())
        timings[name] = prev.get("wall_s", 0.0)
        print(f"[rise] {name}: reusing {stage_dir}")
        return
    print(f"[rise] {name} -> {stage_dir}")
    clear_stale_progress(stage_dir, key)
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    mark_done(stage_dir, key, wall)
    timings[name] = wall


def probe_config(cfg: RunConfig, base: str) -> EvalConfig:
    """The NLL probe's problems and how the base's first attempts at them are sampled: the
    evaluation's format and sampling, on `probe_split` (held out from training and test)."""
    pr = copy.deepcopy(cfg.eval)
    pr.models, pr.task, pr.task_options = {"probe": base}, cfg.task, task_options(cfg)
    pr.split, pr.limit, pr.data_path, pr.turns, pr.parallel = cfg.probe_split, cfg.nll_probe, None, 1, 1
    pr.tasks = []
    pr.seed = cfg.eval.seed + 1
    if cfg.chat_template:
        pr.engine.chat_template = pr.engine.chat_template or cfg.chat_template
    return pr


def build_probe_stage(pr: EvalConfig, out_dir: Path, progress: bool) -> None:
    from rise.config import save_config
    from rise.probe import build_probe
    from rise.tasks import get_task

    task = get_task(pr.task, **pr.task_options)
    build_probe(pr.models["probe"], task, task.load(pr.split, limit=pr.limit), pr, out_dir, progress)
    save_config(out_dir / "config.yaml", pr)


def stage_configs(cfg: RunConfig, policy: str, iteration: int, out: Path, trainee: str | None = None):
    """The collect and train configs of one iteration, derived from the run config: `policy`
    collects, `trainee` (default: the policy) is fine-tuned on its rollouts."""
    from rise.train import TrainStageConfig

    col = copy.deepcopy(cfg.collect)
    col.policy, col.task, col.task_options = policy, cfg.task, task_options(cfg)
    if len(cfg.improve_schedule) >= iteration:
        col.improve = cfg.improve_schedule[iteration - 1]
        CollectConfig.__post_init__(col)
    col.data_path = cfg.train_data or col.data_path
    col.seed = cfg.seed * 1000 + iteration
    col.ray = copy.deepcopy(cfg.ray)
    rollouts = [str(out / f"iter{iteration}" / "collect" / "rollouts.jsonl")]
    tr = TrainStageConfig(model=trainee or policy, rollouts=rollouts,
                          convert=copy.deepcopy(cfg.convert), train=copy.deepcopy(cfg.train))
    tr.train.seed = cfg.seed * 1000 + iteration
    if cfg.nll_probe:
        from rise.probe import probe_files

        tr.eval_files = probe_files(out / "probe")
    if cfg.chat_template:
        col.engine.chat_template = col.engine.chat_template or cfg.chat_template
        tr.chat_template = cfg.chat_template
    return col, tr


def data_inputs(cfg: RunConfig, which: str) -> list[str]:
    """A user's own data file for the train or test problems (the task's built-in data is covered
    by the config), so that an edited file re-runs the stages that read it."""
    path = cfg.train_data if which == "train" else cfg.test_data
    return [path] if path else []


def task_options(cfg: RunConfig) -> dict[str, Any]:
    if cfg.task_options is not None:
        return dict(cfg.task_options)
    return default_options(cfg.task)


def default_options(task: str) -> dict[str, Any]:
    """The options of a task given none: for arith the difficulty the embedded base learns."""
    return dict(CPU_ARITH_OPTIONS) if task.strip() == "arith" else {}


def base_config(cfg: RunConfig) -> PretrainConfig:
    """The embedded base is pretrained on the run's own task and difficulty, so that the problems
    it is fine-tuned and evaluated on are the kind it learnt."""
    pcfg = copy.deepcopy(cfg.pretrain)
    pcfg.task, pcfg.task_options = cfg.task, task_options(cfg)
    return pcfg


def preflight(cfg: RunConfig) -> None:
    """Load the data and check the model paths before any expensive work (pretraining,
    generation), so that bad input fails in a second with one line naming the culprit."""
    from rise.modeling import check_model_source
    from rise.ood import preflight as ood_preflight
    from rise.tasks import get_task
    from rise.tasks.splits import check_disjoint

    ood_preflight(cfg.eval, cfg.eval.tasks, default_options)
    task = get_task(cfg.task, **task_options(cfg))
    test = task.load(cfg.eval.split, path=cfg.test_data or cfg.eval.data_path, limit=cfg.eval.limit)
    if cfg.iterations or cfg.boost.problems:
        train = task.load(cfg.collect.split, path=cfg.train_data or cfg.collect.data_path, limit=cfg.collect.limit)
        if cfg.boost.problems:
            from rise.boost import boost_problems

            train += boost_problems(task, cfg.collect.split, cfg.train_data or cfg.collect.data_path,
                                    cfg.collect.limit, cfg.boost.problems)
        check_disjoint(train, test)  # by question hash: training on test problems is refused
        if cfg.nll_probe:
            task.load(cfg.probe_split, limit=cfg.nll_probe)
    for turn_model in cfg.collect.other_models():
        check_model_source(turn_model)
    for name in (cfg.base, cfg.student):
        if name not in (None, "embedded"):
            check_model_source(name)
    if "embedded" in (cfg.base, cfg.student) and cfg.task != "arith":
        raise InputError(f"task {cfg.task!r}: the embedded base is a 1.15M-parameter model that knows only the "
                         f"synthetic arith task; give --base a hub id or a local model directory")


def run(cfg: RunConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """The main job; with `ray.enabled`, one Ray connection (or local cluster) serves every
    collect and eval stage."""
    preflight(cfg)  # bad input fails in a second, before any model (or Ray cluster) starts
    if not cfg.ray.enabled:
        return run_stages(cfg, out_dir, progress)
    from rise.ray_exec import session

    with session(cfg.ray):
        return run_stages(cfg, out_dir, progress)


def run_stages(cfg: RunConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Every stage of the main job, in order, each reused when already complete."""
    from rise.collect import run_collect
    from rise.config import save_config
    from rise.engines import set_threads
    from rise.evaluate import run_eval
    from rise.pretrain import ensure_base_model
    from rise.records import write_json, write_text
    from rise.train import run_train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(out / "config.yaml", cfg)
    set_threads(cfg.threads)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    base = str(ensure_base_model(base_config(cfg), progress=progress)) if cfg.base == "embedded" else cfg.base
    timings["base"] = time.perf_counter() - t0
    write_text(out / "base.txt", base + "\n")

    notes: list[str] = []
    if cfg.boost.problems:
        base = boost_stages(cfg, base, out, timings, progress, notes)
    models = {"base": base}
    student = resolve_student(cfg, progress)
    if student:
        models["student"] = student
    refiners: dict[str, str] = {}
    train_dirs: dict[str, Path] = {}
    policy = base
    if cfg.nll_probe and cfg.iterations:
        pr, pdir = probe_config(cfg, base), out / "probe"
        _stage("probe", pdir, pr, lambda: build_probe_stage(pr, pdir, progress), timings, [base])
    for it in range(1, cfg.iterations + 1):
        col, tr = stage_configs(cfg, policy, it, out, trainee=student if it == 1 else None)
        cdir, tdir = out / f"iter{it}" / "collect", out / f"iter{it}" / "train"
        _stage(f"iter{it}.collect", cdir, col, partial(run_collect, col, cdir, progress), timings,
               [policy, *col.other_models(), *data_inputs(cfg, "train")])
        _stage(f"iter{it}.train", tdir, tr, partial(run_train, tr, tdir, progress), timings,
               [tr.model, *tr.rollouts, *tr.eval_files.values()])
        notes.append(collection_note(col, it, name_of(models, policy), name_of(models, tr.model)))
        policy = str(tdir / "checkpoint")
        models[f"rise-iter{it}"], train_dirs[f"rise-iter{it}"] = policy, tdir
        if it == 1 and cfg.classic:
            # Classic: the same rollouts, as single-turn SFT of the base (paper, Table 1)
            cl = copy.deepcopy(tr)
            cl.convert.mode = "classic"
            cldir = out / "classic" / "train"
            _stage("classic.train", cldir, cl, partial(run_train, cl, cldir, progress), timings,
                   [cl.model, *cl.rollouts])
            models["classic-sft"], train_dirs["classic-sft"] = str(cldir / "checkpoint"), cldir
        if it == 1 and cfg.glore:
            gl, gldir = glore_config(cfg, tr, base), out / "glore" / "train"
            if has_examples(gl):
                _stage("glore.train", gldir, gl, partial(run_train, gl, gldir, progress), timings,
                       [base, *gl.rollouts])
                refiners["glore-refiner"] = str(gldir / "checkpoint")
            else:
                print("[rise] glore: iteration 1's rollouts hold no wrong attempt followed by a right action; "
                      "no refiner to train")

    ev = eval_config(cfg, models, refiners)
    edir = out / "eval"
    _stage("eval", edir, ev, lambda: run_eval(ev, edir, progress, notes=notes), timings,
           [*ev.models.values(), *ev.refiners.values(), *data_inputs(cfg, "test")])
    ood_stages(cfg, ev, edir, notes, timings, progress)
    if cfg.nll_probe and cfg.iterations:
        write_probe_curves(out, train_dirs)
    timings["total"] = sum(v for k, v in timings.items())
    write_json(out / "timings.json", timings)
    report = json.loads((edir / "report.json").read_text())
    print_summary(report, timings, edir)
    return report


def boost_stages(cfg: RunConfig, raw: str, out: Path, timings: dict[str, float], progress: bool,
                 notes: list[str]) -> str:
    """The boost step (rise.boost): the reference solutions of `boost.problems` training problems
    (after collection's) -> single-turn SFT of the base. Returns the boosted checkpoint, the
    run's base from here on."""
    from rise.boost import BoostDataConfig, run_boost_data
    from rise.train import TrainStageConfig, run_train

    bd = BoostDataConfig(task=cfg.task, task_options=task_options(cfg), split=cfg.collect.split,
                         data_path=cfg.train_data or cfg.collect.data_path, after=cfg.collect.limit,
                         problems=cfg.boost.problems, episode=copy.deepcopy(cfg.collect.episode))
    ddir, tdir = out / "boost" / "data", out / "boost" / "train"
    _stage("boost.data", ddir, bd, partial(run_boost_data, bd, ddir), timings, data_inputs(cfg, "train"))
    tr = TrainStageConfig(model=raw, rollouts=[str(ddir / "rollouts.jsonl")],
                          convert=copy.deepcopy(cfg.convert), train=copy.deepcopy(cfg.train))
    tr.convert.mode = "classic"  # single-turn SFT on the accepted references, weight 1
    tr.train.epochs, tr.train.seed = cfg.boost.epochs, cfg.seed * 1000
    if cfg.chat_template:
        tr.chat_template = cfg.chat_template
    _stage("boost.train", tdir, tr, partial(run_train, tr, tdir, progress), timings, [raw, *tr.rollouts])
    summary = json.loads((ddir / "summary.json").read_text())
    notes.append(f"`base` is `{raw}` after the boost step: single-turn SFT on the reference solutions of "
                 f"{summary['problems']} training problems ({summary['references_accepted']} accepted by the "
                 f"grader), {cfg.boost.epochs:g} epochs (boost/train).")
    return str(tdir / "checkpoint")


def ood_stages(cfg: RunConfig, ev: EvalConfig, edir: Path, notes: list[str], timings: dict[str, float],
               progress: bool) -> None:
    """One eval stage per entry of eval.tasks (rise.ood), keyed on its own config and data, so a
    changed entry re-runs alone; then the main report with their section (also to drop a section
    whose entries are gone)."""
    from rise import ood
    from rise.evaluate import add_ood_report, run_eval

    configs = ood.entry_configs(ev, cfg.eval.tasks, default_options)
    for label, sub in configs.items():
        sdir = ood.entry_dir(edir, label)
        _stage(f"eval.{label}", sdir, sub, partial(run_eval, sub, sdir, progress), timings,
               [*sub.models.values(), *sub.refiners.values(), *([sub.data_path] if sub.data_path else [])])
    report = json.loads((edir / "report.json").read_text())
    if configs or any("ood" in r for r in report.values()):
        add_ood_report(ev, edir, configs, notes)


def glore_config(cfg: RunConfig, tr, base: str):
    """The GLoRE-style refiner's training: the base on iteration 1's rollouts, converted to
    (wrong attempt in context -> correct action) examples; not scored on the NLL probe."""
    gl = copy.deepcopy(tr)
    gl.model, gl.eval_files = base, {}
    gl.convert.mode, gl.convert.max_turn = "refiner", cfg.glore_max_turn
    gl.train.epochs = cfg.glore_epochs  # a train.max_steps cap applies here too
    return gl


def resolve_student(cfg: RunConfig, progress: bool) -> str | None:
    """The path of the model trained on the base's rollouts, or None (the base is trained)."""
    if cfg.student != "embedded":
        return cfg.student
    from rise.pretrain import ensure_base_model

    return str(ensure_base_model(base_config(cfg), progress=progress))


def name_of(models: dict[str, str], path: str) -> str:
    """The report's name of a model path (a RISE checkpoint, the base, the student)."""
    return next((name for name, p in models.items() if p == path), path)


def collection_note(col: CollectConfig, iteration: int, collector: str, trainee: str) -> str:
    """One line of the report saying who collected an iteration's data, with which per-turn
    schedule (runs of equal turns merged), and who learnt from it."""
    spans: list[list] = []  # [first turn, last turn, description]
    for t in range(1, col.turns + 1):
        model = col.model_at(t)
        who = collector if model == col.policy else model
        desc = f"`{who}` x{col.samples_at(t)} at T={col.sampling_at(t).temperature:g}"
        if spans and spans[-1][2] == desc:
            spans[-1][1] = t
        else:
            spans.append([t, t, desc])
    turns = "; ".join(f"turn{'s' if a != b else ''} {a}{f'-{b}' if a != b else ''}: {d}" for a, b, d in spans)
    improve = "" if col.improve == "none" else f"; improved responses: {col.improve}"
    return (f"Iteration {iteration}'s data: rolled out by `{collector}` ({turns}{improve}); "
            f"trained: `{trainee}` -> `rise-iter{iteration}`.")


def has_examples(tr) -> bool:
    """Whether the rollouts of a train stage config convert to any example (a cheap check, so a
    baseline with nothing to learn is skipped instead of failing the run)."""
    from rise.convert import convert, read_rollouts

    return bool(convert(read_rollouts(tr.rollouts), tr.convert))


def eval_config(cfg: RunConfig, models: dict[str, str], refiners: dict[str, str] | None = None) -> EvalConfig:
    """The evaluation of a run: its models on the test problems, shown in the same episode format
    as the rollouts they were trained on (collect.episode) unless eval.episode is set; refiner
    rows continue the base's chains."""
    from rise.episodes import EpisodeConfig

    ev = copy.deepcopy(cfg.eval)
    ev.models, ev.task, ev.task_options = models, cfg.task, task_options(cfg)
    ev.tasks = []  # each its own stage (ood_stages): the main evaluation's key does not depend on them
    ev.refiners, ev.refiner_base = dict(refiners or {}), "base"
    if ev.episode == EpisodeConfig():
        ev.episode = copy.deepcopy(cfg.collect.episode)
    EvalConfig.__post_init__(ev)  # the oracle opt-in applies to the format inherited from collect too
    ev.self_refine = ["base"] if cfg.self_refine else []
    if cfg.chat_template:  # fine-tuned checkpoints save the template; the base may need it
        ev.engine.chat_template = ev.engine.chat_template or cfg.chat_template
    ev.data_path = cfg.test_data or ev.data_path
    ev.ray = copy.deepcopy(cfg.ray)
    return ev


def write_probe_curves(out: Path, dirs: dict[str, Path]) -> dict[str, dict]:
    """probe/nll_over_training.{json,png}: each trained model's NLL probe curve (analysis (a))."""
    from rise.records import write_json
    from rise.report import plot_nll_over_training

    curves, done = {}, 0
    for n, d in dirs.items():
        c = curves[n] = json.loads((d / "train_stats.json").read_text())["eval_nll"]
        chained = n.startswith("rise")  # iteration k continues from iteration k-1's weights
        c["from_step"] = done if chained else 0
        done += c["step"][-1] if chained else 0
    write_json(out / "probe" / "nll_over_training.json", curves)
    plot_nll_over_training(curves, out / "probe" / "nll_over_training.png")
    return curves


def print_summary(report: dict, timings: dict[str, float], edir: Path) -> None:
    from rise.report import ood_by_task

    print_table(report)
    for label, rows in ood_by_task(report).items():
        print(f"\nout of distribution: {label}")
        print_table(rows)
    print("\nwall time: " + ", ".join(f"{key} {v:.0f}s" for key, v in timings.items()))
    print(f"report: {edir / 'report.md'}")


def print_table(report: dict) -> None:
    """The headline metrics of each row, in percent, and its accuracy at each turn."""
    first = next(iter(report.values()))
    k, t = first.get("K", 5), first.get("T", 5)
    keys = list(dict.fromkeys(["m1@t1", f"m{k}@t1", f"p{k}@t1", f"m1@t{t}", f"p1@t{t}"]))  # K = T = 1: one column
    print(f"\n{'model':<14}" + "".join(f"{key:>8}" for key in keys) + "   accuracy at turn 1..T")
    for name, m in report.items():
        row = "".join(f"{100 * m[key]:>8.1f}" if m.get(key) is not None else f"{'-':>8}" for key in keys)
        turns = " ".join(f"{100 * a:.1f}" for a in m.get("turn_acc", []))
        print(f"{name:<14}{row}   {turns}")
