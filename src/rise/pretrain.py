"""The `pretrain` stage: make the embedded default base model from scratch, offline, on a CPU.

Recipe (deterministic: the same config gives the same weights on the same machine and thread
count):
1. draw `n_problems` training problems of the task (`arith` by default);
2. turn them into the pretraining chat corpus (`rise.embedded.pretraining_conversations`: mostly
   single-turn, some chats of 2-3 different questions; never RISE's feedback line);
3. fit a byte-level BPE tokenizer on the corpus text (`rise.embedded.build_tokenizer`);
4. initialise a small Qwen2 (`rise.embedded.model_config`) with `torch.manual_seed(seed)`;
5. train every assistant turn with the project's one training loop, `rise.train.fit`;
6. measure it on held-out test problems: turn-1 accuracy when sampling at `eval_temperature`, and
   at turn 2 (after the "incorrect" feedback line, which restates the question) the accuracy and
   the share of responses with no parseable answer;
7. write the model, tokenizer, `pretrain_config.{yaml,json}`, `pretrain_stats.json` and a
   `model_card.md` saying how it was made, into a temporary directory renamed to `out_dir`.

`ensure_base_model(cfg)` reuses a finished base in the cache (`$RISE_CACHE`, default
`~/.cache/rise`) keyed by a hash of the config, or in the package's shipped assets, and otherwise
pretrains one there.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rise.errors import InputError

log = logging.getLogger(__name__)

# Bump when the recipe changes in a way that changes the weights: it is part of the cache key.
RECIPE_VERSION = 1

# Files a finished base directory holds (written last: model_card.md).
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                  "pretrain_config.json", "model_card.md")


@dataclass
class PretrainConfig:
    # data
    task: str = "arith"              # task the corpus is drawn from (rise.tasks.get_task)
    # options of rise.tasks.get_task; the default is the difficulty the default base is
    # calibrated for (rise.embedded.CPU_ARITH_OPTIONS); collect and eval must use the same
    task_options: dict[str, Any] = field(default_factory=lambda: dict(_default_task_options()))
    n_problems: int = 100000          # training problems drawn for the corpus (each used once per epoch)
    multi_turn_fraction: float = 0.4  # share of chats holding 2..max_questions different questions
    max_questions: int = 3           # most questions in one multi-question chat
    drill_ratio: float = 0.0          # share of problems whose calculations are also drilled alone
    preset: str = "default"           # prompt preset the questions are rendered with
    # model
    size: str = "default"             # rise.embedded.SIZES: tiny, default, medium, large
    vocab_size: int = 1024           # byte-level BPE vocabulary (>= 300: 256 bytes + specials)
    # optimisation (rise.train.TrainConfig)
    epochs: float = 1.0              # passes over the corpus (when max_steps is None)
    max_steps: int | None = None      # optimizer steps; None = from epochs
    lr: float = 5e-3                 # peak learning rate
    batch_size: int = 8               # conversations per step: small batches learn more per CPU-second
    micro_batch_tokens: int = 4096   # padded tokens per forward pass
    warmup_ratio: float = 0.03       # share of steps of linear warm-up before the cosine decay
    min_lr_ratio: float = 0.1        # the cosine decay ends at lr x this
    weight_decay: float = 0.0        # AdamW weight decay
    grad_clip: float = 1.0           # maximum gradient norm (0: no clipping)
    max_length: int = 1024           # longer chats are skipped and counted
    seed: int = 0                    # problems, corpus order and initial weights
    threads: int | None = 2           # torch CPU threads while pretraining (restored after); None = leave
    # measurement written to the model card (does not change the weights)
    eval_problems: int = 200          # held-out test problems; 0 skips the measurement
    eval_temperature: float = 1.0    # sampling temperature of the measurement
    eval_max_new_tokens: int = 200   # tokens generated per measured answer
    eval_batch_size: int = 64        # generation rows per forward pass while measuring
    # output
    out_dir: str | None = None        # folder of the model (rise pretrain: --out; the cache ignores it)

    def __post_init__(self) -> None:
        from rise.embedded import SIZES

        if self.size not in SIZES:
            raise InputError(f"pretrain.size must be one of {', '.join(SIZES)}, got {self.size!r}")
        for name in ("n_problems", "vocab_size", "batch_size", "micro_batch_tokens", "max_length",
                     "max_questions"):
            if getattr(self, name) < 1:
                raise InputError(f"pretrain.{name} must be >= 1, got {getattr(self, name)}")
        if self.vocab_size < 300:
            raise InputError(f"pretrain.vocab_size must be >= 300 (256 bytes + specials), got {self.vocab_size}")
        if self.lr <= 0 or self.epochs <= 0:
            raise InputError("pretrain.lr and pretrain.epochs must be > 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError(f"pretrain.max_steps must be >= 1 or None, got {self.max_steps}")
        if self.eval_problems < 0:
            raise InputError(f"pretrain.eval_problems must be >= 0, got {self.eval_problems}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PretrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown pretrain config keys: {', '.join(unknown)}")
        return cls(**d)

    def weights_key(self) -> dict[str, Any]:
        """The fields that determine the weights (measurement and output fields left out)."""
        d = self.to_dict()
        for k in ("out_dir", "eval_problems", "eval_temperature", "eval_max_new_tokens",
                  "eval_batch_size"):
            d.pop(k)
        return d

    def cache_key(self) -> str:
        """Short hash of the weight-determining config and the recipe version."""
        blob = json.dumps({"config": self.weights_key(), "recipe": RECIPE_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _default_task_options() -> dict[str, Any]:
    from rise.embedded import CPU_ARITH_OPTIONS

    return CPU_ARITH_OPTIONS


# -- building blocks -----------------------------------------------------------------------------
def make_task(cfg: PretrainConfig) -> Any:
    from rise.tasks import get_task

    return get_task(cfg.task, seed=cfg.seed, **dict(cfg.task_options))


def build_corpus(cfg: PretrainConfig, task: Any = None) -> tuple[list[Any], list[list[dict]]]:
    """(training problems, pretraining conversations) of `cfg`."""
    from rise.embedded import arithmetic_drills, contains_feedback, pretraining_conversations

    task = task if task is not None else make_task(cfg)
    problems = task.load("train", limit=cfg.n_problems)
    if not problems:
        raise InputError(f"task {cfg.task!r} gave no training problems")
    convs = pretraining_conversations(
        problems, random.Random(cfg.seed), multi_turn_fraction=cfg.multi_turn_fraction,
        max_questions=cfg.max_questions, preset=cfg.preset,
    )
    if cfg.drill_ratio:
        drills = arithmetic_drills(problems, random.Random(cfg.seed + 1), cfg.drill_ratio)
        mixed = convs + drills
        random.Random(cfg.seed + 2).shuffle(mixed)
        convs = mixed
    if contains_feedback(convs):  # a task whose own text mentions retrying would leak it
        raise InputError("the pretraining corpus contains feedback wording ('incorrect', 'try again')")
    return problems, convs


def measure(model: Any, tokenizer: Any, task: Any, cfg: PretrainConfig, progress: bool = False) -> dict[str, Any]:
    """Turn-1 accuracy and no-answer rate at `eval_temperature` on held-out test problems, and at
    turn 2 after the "incorrect" feedback (context: question, turn-1 attempt, feedback)."""
    from rise.engines.hf import HFBackend, SamplingParams
    from rise.episodes import Attempt, render_state
    from rise.prompts import get_preset

    problems = task.load("test", limit=cfg.eval_problems)
    preset = get_preset(cfg.preset)
    backend = HFBackend(model, tokenizer, batch_size=cfg.eval_batch_size,
                        progress="measure" if progress else False)
    params = SamplingParams(temperature=cfg.eval_temperature, top_p=1.0,
                            max_new_tokens=cfg.eval_max_new_tokens)
    t0 = time.perf_counter()
    states = [render_state(p.question, [], preset, "incorrect", history=1) for p in problems]
    first = [out[0] for out in backend.generate(states, 1, params, seed=cfg.seed + 1)]
    graded1 = [task.grade(r, p) for r, p in zip(first, problems, strict=True)]
    states2 = [render_state(p.question, [Attempt(r, a, w)], preset, "incorrect", history=1)
               for p, r, (a, w) in zip(problems, first, graded1, strict=True)]
    second = [out[0] for out in backend.generate(states2, 1, params, seed=cfg.seed + 2)]
    graded2 = [task.grade(r, p) for r, p in zip(second, problems, strict=True)]
    n = len(problems)
    wrong1 = [i for i in range(n) if graded1[i][1] != 1.0]
    same = sum(1 for i in range(n) if graded2[i][0] is not None and graded2[i][0] == graded1[i][0])
    return {
        "problems": n,
        "temperature": cfg.eval_temperature,
        "turn1_accuracy": sum(g[1] == 1.0 for g in graded1) / n,
        "turn1_no_answer": sum(g[0] is None for g in graded1) / n,
        "turn2_accuracy": sum(g[1] == 1.0 for g in graded2) / n,
        "turn2_no_answer": sum(g[0] is None for g in graded2) / n,
        "turn2_accuracy_after_wrong": (sum(graded2[i][1] == 1.0 for i in wrong1) / len(wrong1)) if wrong1 else None,
        "turn2_same_answer": same / n,
        "wall_s": time.perf_counter() - t0,
        "example": {"question": problems[0].question, "turn1": first[0], "turn2": second[0]} if n else None,
    }


# -- the stage -----------------------------------------------------------------------------------
def pretrain(cfg: PretrainConfig, progress: bool = True, command: str | None = None) -> Path:
    """Pretrain the embedded base model described by `cfg` into `cfg.out_dir`; returns the path.

    The directory appears atomically (trained in a temporary sibling, then renamed); an existing
    `out_dir` is an error, so that nothing is overwritten.
    """
    import torch

    if not cfg.out_dir:
        raise InputError("pretrain.out_dir is not set")
    out = Path(cfg.out_dir).expanduser()
    if out.exists():
        raise InputError(f"pretrain output {str(out)!r} already exists; choose another out_dir")
    out.parent.mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _pretrain(cfg, out, progress, command)
    finally:
        torch.set_num_threads(old_threads)


def _pretrain(cfg: PretrainConfig, out: Path, progress: bool, command: str | None) -> Path:
    import torch

    from rise.embedded import build_model, build_tokenizer, corpus_texts, count_parameters
    from rise.modeling import save_model
    from rise.train import TrainConfig, fit

    command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    t_start, cpu_start = time.perf_counter(), time.process_time()

    task = make_task(cfg)
    problems, convs = build_corpus(cfg, task)
    _say(progress, f"pretrain: {len(problems)} problems -> {len(convs)} conversations")
    tokenizer = build_tokenizer(corpus_texts(convs), vocab_size=cfg.vocab_size)
    model = build_model(tokenizer, cfg.size, seed=cfg.seed)
    n_params = count_parameters(model)
    _say(progress, f"pretrain: vocabulary {len(tokenizer)}, Qwen2 '{cfg.size}' with {n_params:,} parameters")

    tcfg = TrainConfig(
        lr=cfg.lr, epochs=cfg.epochs, max_steps=cfg.max_steps, batch_size=cfg.batch_size,
        micro_batch_tokens=cfg.micro_batch_tokens, warmup_ratio=cfg.warmup_ratio,
        min_lr_ratio=cfg.min_lr_ratio, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
        max_length=cfg.max_length, seed=cfg.seed, train_on="all_assistant",
    )
    examples = [{"messages": c, "weight": 1.0} for c in convs]
    t_train, c_train = time.perf_counter(), time.process_time()
    stats = fit(model, tokenizer, examples, tcfg, progress=progress)
    train_wall, train_cpu = time.perf_counter() - t_train, time.process_time() - c_train
    model.eval()

    metrics = None
    if cfg.eval_problems:
        with torch.no_grad():
            metrics = measure(model, tokenizer, task, cfg, progress=progress)
        _say(progress, "pretrain: turn-1 accuracy {:.1%}, turn-2 no-answer {:.1%} ({} test problems, T={})".format(
            metrics["turn1_accuracy"], metrics["turn2_no_answer"], metrics["problems"], cfg.eval_temperature))
    total_wall = time.perf_counter() - t_start
    total_cpu = time.process_time() - cpu_start

    summary = {
        "parameters": n_params,
        "vocab_size": len(tokenizer),
        "train_problems": len(problems),
        "conversations": len(convs),
        "multi_turn_conversations": sum(1 for c in convs if len(c) > 2),
        "steps": stats.get("steps"),
        "final_loss": stats.get("final_loss"),
        "loss": stats.get("loss"),
        "tokens": stats.get("tokens"),
        "tokens_per_s": stats.get("tokens_per_s"),
        "skipped_too_long": stats.get("skipped_too_long"),
        "train_wall_s": train_wall,
        "train_cpu_s": train_cpu,
        "total_wall_s": total_wall,
        "total_cpu_s": total_cpu,
        "torch_threads": torch.get_num_threads(),
        "measured": metrics,
        "cache_key": cfg.cache_key(),
        "command": command,
        "environment": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": _version("transformers"), "tokenizers": _version("tokenizers"),
            "machine": platform.machine(), "cpus": os.cpu_count(),
        },
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        save_model(model, tokenizer, tmp)
        (tmp / "pretrain_config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
        _write_yaml(tmp / "pretrain_config.yaml", cfg.to_dict())
        (tmp / "pretrain_stats.json").write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / "model_card.md").write_text(model_card(cfg, summary))
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _say(progress, f"pretrain: wrote {out} ({total_wall:.0f} s)")
    return out


def cache_root() -> Path:
    """`$RISE_CACHE`, else `~/.cache/rise`."""
    env = os.environ.get("RISE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rise"


def base_model_name(cfg: PretrainConfig) -> str:
    return f"base-{cfg.task}-{cfg.size}-{cfg.cache_key()}"


def shipped_base_model(cfg: PretrainConfig) -> Path | None:
    """A finished base for `cfg` shipped inside the package (`rise/assets/<name>`), if any."""
    path = Path(__file__).resolve().parent / "assets" / base_model_name(cfg)
    return path if is_complete(path) else None


def is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in REQUIRED_FILES)


def ensure_base_model(cfg: PretrainConfig | None = None, progress: bool = True) -> Path:
    """The directory of the base model `cfg` describes: shipped with the package, cached, or
    pretrained now into the cache (`cfg.out_dir` is ignored: the cache decides the path)."""
    cfg = cfg or PretrainConfig()
    shipped = shipped_base_model(cfg)
    if shipped is not None:
        return shipped
    path = cache_root() / "models" / base_model_name(cfg)
    if is_complete(path):
        return path
    if path.exists():  # an incomplete leftover (e.g. files deleted by hand): never reuse it
        shutil.rmtree(path, ignore_errors=True)
    run_cfg = PretrainConfig.from_dict({**cfg.to_dict(), "out_dir": str(path)})
    _say(progress, f"no cached base model for this config; pretraining into {path}")
    try:
        return pretrain(run_cfg, progress=progress)
    except ValueError:
        if is_complete(path):  # another process finished the same config first
            return path
        raise
    except OSError:
        if is_complete(path):
            return path
        raise


# -- output --------------------------------------------------------------------------------------
def model_card(cfg: PretrainConfig, s: dict[str, Any]) -> str:
    m = s.get("measured")
    lines = [
        f"# rise embedded base model ({cfg.task}, size '{cfg.size}')",
        "",
        "A small Qwen2 causal LM (RoPE, tied embeddings) with a byte-level BPE tokenizer (digits one",
        "per token), trained from random initialisation by `rise.pretrain` on synthetic",
        f"`{cfg.task}` problems, offline. It is the default base model of `rise`: it answers",
        "questions in the chat format and knows multi-turn chats, but was never shown RISE's",
        "feedback line or a corrected answer (no self-correction is built in).",
        "",
        "## How it was made",
        "",
        f"- command: `{s['command']}`",
        "- equivalent Python: `rise.pretrain.pretrain(PretrainConfig(**json.load(open('pretrain_config.json'))))`",
        f"- config: `pretrain_config.yaml` (cache key `{s['cache_key']}`, recipe version {RECIPE_VERSION})",
        f"- data: {s['train_problems']} training problems of task `{cfg.task}` (options "
        f"`{json.dumps(cfg.task_options, sort_keys=True)}`, seed {cfg.seed}) rendered with prompt preset "
        f"`{cfg.preset}` into {s['conversations']} conversations, {s['multi_turn_conversations']} of them "
        f"with 2-{cfg.max_questions} different questions (follow-ups such as \"Great job! Next question: ...\"); "
        "every assistant turn is a reference solution and is trained",
        f"- tokenizer: byte-level BPE fitted on the corpus, {s['vocab_size']} tokens; chat template "
        "`<|role|>\\n{content}<|end|>\\n`, eos `<|end|>`, pad `<|pad|>`",
        f"- model: Qwen2, {s['parameters']:,} parameters (hidden {_shape(cfg)['hidden_size']}, "
        f"{_shape(cfg)['num_hidden_layers']} layers, {_shape(cfg)['num_attention_heads']} heads, "
        f"MLP {_shape(cfg)['intermediate_size']}), float32, init seed {cfg.seed}",
        f"- training: `rise.train.fit`, AdamW lr {cfg.lr} (warm-up {cfg.warmup_ratio:.0%}, cosine to "
        f"{cfg.min_lr_ratio} x lr), batch {cfg.batch_size} conversations, {s['steps']} steps "
        f"({cfg.epochs} epoch(s)" + (f", capped at {cfg.max_steps} steps" if cfg.max_steps else "") + "), "
        f"{s['tokens']:,} tokens, final loss {s['final_loss']:.4f}",
        f"- wall time: {s['train_wall_s']:.0f} s training, {s['total_wall_s']:.0f} s in all; CPU time "
        f"{s['train_cpu_s']:.0f} s training, {s['total_cpu_s']:.0f} s in all "
        f"({s['torch_threads']} torch thread(s), {s['environment']['cpus']} CPUs, "
        f"torch {s['environment']['torch']}, transformers {s['environment']['transformers']})",
        "",
        "## Measured",
        "",
    ]
    if m:
        after = m["turn2_accuracy_after_wrong"]
        lines += [
            f"On {m['problems']} held-out test problems, one sample each at temperature {m['temperature']}, top-p 1.0:",
            "",
            "| turn | accuracy | no parseable answer |",
            "|---|---|---|",
            f"| 1 | {m['turn1_accuracy']:.1%} | {m['turn1_no_answer']:.1%} |",
            f"| 2 (after \"The answer is incorrect. Please try again. Here's the question: ...\") | "
            f"{m['turn2_accuracy']:.1%} | {m['turn2_no_answer']:.1%} |",
            "",
            f"Turn 2 accuracy after a wrong turn 1: {'n/a' if after is None else f'{after:.1%}'}; "
            f"turn 2 repeats the turn-1 answer in {m['turn2_same_answer']:.1%} of problems.",
        ]
    else:
        lines.append("Not measured (eval_problems = 0).")
    lines.append("")
    return "\n".join(lines)


def _shape(cfg: PretrainConfig) -> dict[str, int]:
    from rise.embedded import SIZES

    return SIZES[cfg.size]


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        return
    path.write_text(yaml.safe_dump(data, sort_keys=True))


def _version(mod: str) -> str:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:  # noqa: BLE001
        return "unknown"


def _say(progress: bool, msg: str) -> None:
    log.info(msg)
    if progress:
        try:
            from tqdm.auto import tqdm

            tqdm.write(msg, file=sys.stderr)
        except ImportError:  # pragma: no cover
            print(msg, file=sys.stderr)
