"""Weighted NLL training on multi-turn examples (the `train` stage).

Objective (paper, Eq. 4.2, reward-weighted regression; official FastChat `compute_loss`):

    L(theta) = (1 / N) * sum_i  w_i * mean_{t in T_i}  -log p_theta(y_{i,t} | y_{i,<t})

over the N examples of one optimizer step, where T_i are the token positions of example i's
target (its last assistant turn) and w_i = exp(r_i / tau). The loss is exactly this sum whatever
the micro-batching, gradient accumulation or number of processes: each micro-batch contributes
sum_i w_i * mean_t NLL_{i,t} / N, and under DDP each process scales by its world size to undo the
gradient averaging.

Speed: the LM head and the loss are computed only at the trained positions (the official recipe
pads to 2048 and computes full-vocabulary logits everywhere; on an H200 this alone was 9x), and
examples of similar length share a micro-batch bounded by a token budget.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from rise.attention import resolve_attention, training_attention
from rise.convert import ConvertConfig
from rise.errors import InputError
from rise.packing import micro_batch, resolve_packing


@dataclass
class TrainConfig:
    lr: float = 1e-5                 # official: 1e-5 for 7B models; small models want more
    epochs: float = 1.0              # passes over the examples (when max_steps is None)
    max_steps: int | None = None     # optimizer steps; None = from epochs
    batch_size: int = 16             # examples per optimizer step (official: 1 x 16 accumulation)
    micro_batch_tokens: int = 8192   # padded tokens per forward pass
    warmup_ratio: float = 0.04       # official: 4% warm-up, cosine decay
    min_lr_ratio: float = 0.0        # the cosine decay ends at lr x this
    weight_decay: float = 0.0        # AdamW weight decay
    grad_clip: float = 1.0           # maximum gradient norm (0: no clipping)
    max_length: int = 2048           # longer examples are skipped and counted, never truncated silently
    seed: int = 0                    # example order (and LoRA's initial weights)
    train_on: str = "last"           # "last": last assistant turn (RISE); "all_assistant": every assistant turn
    full_logits: bool = False        # compute logits at every position (exact for models with logit soft-capping)
    # auto | on | off: run each micro-batch packed, without padding (rise.packing); auto: on for
    # models at least 256 wide with transformers' sdpa or eager attention, off with full_logits
    packing: str = "auto"
    # auto | rise | model: the attention while training (rise.attention). auto: on a CPU, rise's
    # causal attention over right-padded rows without a padding mask (matmuls + float32 softmax,
    # faster there than torch's SDPA), elsewhere the model's own; rise: always; model: never
    attention: str = "auto"
    normalize_weights: bool = False  # divide by the batch's weight sum instead of N
    lora: bool = False               # train LoRA adapters (peft) instead of every weight
    lora_r: int = 16                 # LoRA rank
    lora_alpha: int = 32             # LoRA scale numerator (scale = alpha / r)
    lora_dropout: float = 0.0        # dropout on the LoRA path
    lora_target_modules: str = "all-linear"  # modules LoRA wraps (peft target_modules)
    log_every: int = 10              # optimizer steps between log lines
    save_every: int = 100            # steps between resumable training states (0: none)
    eval_every: int = 0              # steps between scorings of the eval sets (0: before and after only)
    # experiment tracking (rise.tracking), offline by default: none | tensorboard | wandb |
    # trackio | mlflow, or several comma-separated; logs land in the stage's logs/ folder
    report_to: str = "none"

    def __post_init__(self):
        if self.train_on not in ("last", "all_assistant"):
            raise InputError(f"train.train_on must be 'last' or 'all_assistant', got {self.train_on!r}")
        for name in ("lr", "batch_size", "micro_batch_tokens", "max_length"):
            if getattr(self, name) <= 0:
                raise InputError(f"train.{name} must be > 0, got {getattr(self, name)}")
        if self.packing not in ("auto", "on", "off"):
            raise InputError(f"train.packing must be auto, on or off, got {self.packing!r}")
        if self.attention not in ("auto", "rise", "model"):
            raise InputError(f"train.attention must be auto, rise or model, got {self.attention!r}")
        if self.eval_every < 0:
            raise InputError(f"train.eval_every must be >= 0, got {self.eval_every}")
        from rise.tracking import parse_report_to

        parse_report_to(self.report_to)


# ------------------------------------------------------------------ tokenisation

def render(tokenizer, messages, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _assistant_spans(tokenizer, messages, train_on: str) -> list[tuple[str, bool]]:
    """Split the rendered conversation into (text, trained) segments.

    Each segment boundary comes from rendering a prefix of the conversation, so the target text is
    exactly what the chat template puts after the generation prompt (including its end-of-turn
    token). Prompt and target are tokenised separately and concatenated, so a merge across the
    boundary can never silently shift the mask (an official-code defect).
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise InputError("a training example must end with an assistant message")
    idx = [len(messages) - 1] if train_on == "last" else [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    segments, done = [], ""
    for i in idx:
        prompt = render(tokenizer, messages[:i], add_generation_prompt=True)
        full = render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise InputError("the chat template does not render conversations as prefixes of each other")
        segments.append((prompt[len(done):], False))
        segments.append((full[len(prompt):], True))
        done = full
    return [(t, m) for t, m in segments if t]


def tokenize_example(tokenizer, messages, train_on: str = "last") -> tuple[list[int], list[bool]]:
    """(input_ids, trained) for one conversation; trained[t] marks tokens that are targets."""
    ids: list[int] = []
    mask: list[bool] = []
    for text, trained in _assistant_spans(tokenizer, messages, train_on):
        toks = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(toks)
        mask.extend([trained] * len(toks))
    return ids, mask


@dataclass
class Encoded:
    input_ids: list[int]
    trained: list[bool]
    weight: float


def encode_examples(tokenizer, examples, cfg: TrainConfig) -> tuple[list[Encoded], int]:
    """Tokenise all examples; returns (encoded, number skipped for exceeding max_length)."""
    out, skipped = [], 0
    for ex in examples:
        ids, mask = tokenize_example(tokenizer, ex["messages"], cfg.train_on)
        if len(ids) > cfg.max_length or not any(mask[1:]):
            skipped += 1
            continue
        out.append(Encoded(ids, mask, float(ex.get("weight", 1.0))))
    return out, skipped


# ------------------------------------------------------------------ batching

def global_batches(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Example indices of each optimizer step: seeded epoch-wise shuffles, concatenated."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < steps * batch_size:
        perm = list(range(n))
        rng.shuffle(perm)
        order.extend(perm)
    return [order[s * batch_size:(s + 1) * batch_size] for s in range(steps)]


def micro_batches(indices: list[int], lengths: list[int], token_budget: int) -> list[list[int]]:
    """Group one step's examples into micro-batches of similar length.

    Sorting by length keeps padding small; a micro-batch grows while rows * longest <= budget
    (always at least one row).
    """
    order = sorted(indices, key=lambda i: lengths[i])
    out, cur, longest = [], [], 0
    for i in order:
        new_longest = max(longest, lengths[i])
        if cur and new_longest * (len(cur) + 1) > token_budget:
            out.append(cur)
            cur, new_longest = [], lengths[i]
        cur.append(i)
        longest = new_longest
    if cur:
        out.append(cur)
    return out


def collate(batch: list[Encoded], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask [B, L]; target_mask [B, L-1] marks positions
    whose next token is trained; weights [B]."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    tmask = torch.zeros((len(batch), width), dtype=torch.bool)
    for r, e in enumerate(batch):
        n = len(e.input_ids)
        ids[r, :n] = torch.tensor(e.input_ids)
        attn[r, :n] = 1
        tmask[r, :n] = torch.tensor(e.trained)
    weights = torch.tensor([e.weight for e in batch], dtype=torch.float32)
    return ids, attn, tmask[:, 1:], weights


# ------------------------------------------------------------------ loss

def finish_logits(config, logits):
    """What a causal LM's own forward does to the LM head's output before the loss, which the fast
    path (LM head at the trained positions only) must do too: Cohere multiplies by `logit_scale`,
    Granite divides by `logits_scaling`, Gemma 2/3 soft-cap with cap * tanh(logits / cap).
    logits: [P, V] -> [P, V]."""
    import torch

    text = getattr(config, "text_config", None) or config  # multimodal configs nest the LM's
    scale = getattr(text, "logit_scale", None)
    if isinstance(scale, (int, float)) and text.model_type.startswith("cohere"):
        logits = logits * scale
    scaling = getattr(text, "logits_scaling", None)
    if isinstance(scaling, (int, float)) and scaling != 1:
        logits = logits / scaling
    cap = getattr(text, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def per_example_nll(model, input_ids, attention_mask, target_mask, full_logits: bool = False):
    """Mean token NLL of each example's trained tokens: [B].

    input_ids, attention_mask: [B, L]; target_mask: [B, L-1] (position t predicts token t+1).
    With full_logits=False the LM head runs only on the P = target_mask.sum() trained positions
    ([P, H] -> [P, V]) instead of all B*L ([B, L, V]).
    """
    import torch
    import torch.nn.functional as F

    targets = input_ids[:, 1:][target_mask]                                   # [P]
    rows = torch.nonzero(target_mask, as_tuple=True)[0]                       # [P]
    if full_logits:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1][target_mask]
    else:
        hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = finish_logits(model.config, model.get_output_embeddings()(hidden[:, :-1][target_mask]))  # [P, V]
    nll = F.cross_entropy(logits.float(), targets, reduction="none")          # [P]
    b = input_ids.shape[0]
    sums = torch.zeros(b, device=nll.device).index_add_(0, rows, nll)
    counts = torch.zeros(b, device=nll.device).index_add_(0, rows, torch.ones_like(nll))
    return sums / counts.clamp_min(1)


def weighted_loss_sum(nll, weights):
    """sum_i w_i * nll_i over a micro-batch (divide by N of the whole step outside)."""
    return (weights.to(nll.device) * nll).sum()


# ------------------------------------------------------------------ model setup

def apply_lora(model, cfg: TrainConfig):
    import torch
    from peft import LoraConfig, get_peft_model

    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM")
    # LoRA's A matrices are drawn at random: seed them, so that a run (and every process of a
    # distributed run, and a single-process run of the same config) starts from the same adapter.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return get_peft_model(model, lcfg)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to min_lr_ratio * lr (official schedule)."""
    warm = max(1, int(round(cfg.warmup_ratio * total))) if cfg.warmup_ratio > 0 else 0
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def peak_memory_bytes(device) -> int:
    import resource

    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def nll_module(model, full_logits: bool, packed: bool = False):
    """Wrap the causal LM in a module whose forward returns per-example NLL, so DDP/FSDP see the
    whole computation pass through their wrapper's forward (their gradient hooks need that).
    Its forward takes `micro_batch`'s tensors: padded (input_ids, attention_mask, target_mask)
    or, with `packed`, rise.packing's (input_ids, position_ids, target_mask, segments, cu_seq_lens)."""
    import torch

    from rise.packing import packed_nll

    class PerExampleNLL(torch.nn.Module):
        def __init__(self, lm):
            super().__init__()
            self.lm = lm
            self.packed = packed

        def forward(self, *tensors):
            if self.packed:
                return packed_nll(self.lm, *tensors)
            return per_example_nll(self.lm, *tensors, full_logits)

    # FSDP's transformer auto-wrap (accelerate, with no layer class named in its config) wraps
    # the classes listed in the prepared module's `_no_split_modules`: forward the LM's own
    # (Qwen2DecoderLayer, LlamaDecoderLayer, ...), also through a peft wrapper.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    PerExampleNLL._no_split_modules = list(getattr(base, "_no_split_modules", None) or [])

    return PerExampleNLL(model)


def mean_nll(net, encoded: list[Encoded], pad_id: int, token_budget: int, device) -> float:
    """Mean over examples of each one's per-token target NLL (nats/token), no gradients; `net` is
    an `nll_module` (prepared or not). NaN for no examples."""
    import torch

    if not encoded:
        return float("nan")
    was_training = net.training
    net.eval()
    lengths = [len(e.input_ids) for e in encoded]
    total = 0.0
    with torch.no_grad():
        for mb in micro_batches(list(range(len(encoded))), lengths, token_budget):
            packed = getattr(getattr(net, "module", net), "packed", False)
            tensors, _, _, _ = micro_batch([encoded[i] for i in mb], pad_id, packed, device)
            total += float(net(*tensors).sum())
    net.train(was_training)
    return total / len(encoded)


def _state_fingerprint(cfg: TrainConfig, encoded: list[Encoded]) -> str:
    """What a saved training state must match to be resumed: the config (less its logging and
    saving cadence and trackers) and the tokenised examples."""
    import hashlib
    import json

    d = {k: v for k, v in asdict(cfg).items() if k not in ("save_every", "log_every", "eval_every", "report_to")}
    h = hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode())
    for e in encoded:
        h.update(repr((e.input_ids, e.trained, e.weight)).encode())
    return h.hexdigest()[:16]


def fit(model, tokenizer, examples: list[dict], cfg: TrainConfig, progress: bool = True,
        accelerator=None, state_dir=None, eval_sets: dict[str, list[dict]] | None = None) -> dict[str, Any]:
    """Train `model` in place on weighted examples; returns statistics.

    `accelerator` (an `accelerate.Accelerator`) handles devices and DDP/FSDP/DeepSpeed; one is
    made when not given. Each process takes a strided share of every global batch.
    `state_dir`: every `cfg.save_every` steps the full training state is saved there, and a
    matching saved state is resumed (same weights, optimizer, RNG and data position as if the
    run had never stopped).
    `eval_sets`: {name: examples}, each scored (mean target NLL, `mean_nll`) before the first
    step, every `cfg.eval_every` steps and after the last; the curves are in the result's
    "eval_nll" ({"step": [...], name: [...]}). Every process scores the whole set (FSDP needs all
    of them in each forward), so the values agree everywhere.
    """
    import torch
    from accelerate import Accelerator, DistributedType

    from rise.tracking import log_metrics
    from rise.train_state import load_train_state, save_train_state

    acc = accelerator or Accelerator()
    torch.manual_seed(cfg.seed)
    encoded, skipped = encode_examples(tokenizer, examples, cfg)
    if not encoded:
        raise InputError(f"no training examples left ({skipped} longer than max_length={cfg.max_length})")
    batch_size = min(cfg.batch_size, len(encoded))
    steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(encoded) / batch_size))
    lengths = [len(e.input_ids) for e in encoded]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    packed = resolve_packing(cfg, model)
    matmul = resolve_attention(cfg.attention, model, acc.device)
    net = nll_module(model, cfg.full_logits, packed)
    params = [p for p in net.parameters() if p.requires_grad]
    # on a CPU, torch's fused AdamW (one kernel for all parameters, not a loop of ~10 ops per
    # tensor): the embedded default's optimizer step 2.2 -> 0.5 ms
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=acc.device.type == "cpu" or None)
    net, opt = acc.prepare(net, opt)
    net.train()
    rank, world = acc.process_index, acc.num_processes
    deepspeed = acc.distributed_type == DistributedType.DEEPSPEED

    evals = {name: encode_examples(tokenizer, rows, cfg)[0] for name, rows in (eval_sets or {}).items()}
    eval_nll: dict[str, list] = {"step": [], **{name: [] for name in evals}}

    def score(at_step: int) -> None:
        if evals and at_step not in eval_nll["step"]:
            eval_nll["step"].append(at_step)
            for name, enc in evals.items():
                eval_nll[name].append(mean_nll(net, enc, pad_id, cfg.micro_batch_tokens, acc.device))
            log_metrics(acc, {f"eval/{name}_nll": eval_nll[name][-1] for name in evals}, at_step)

    losses, grad_norms, t0, tokens, trained_tokens = [], [], time.perf_counter(), 0, 0
    start, fp = 0, _state_fingerprint(cfg, encoded)
    resumed = load_train_state(acc, state_dir, fp) if state_dir else None
    if resumed:
        start, losses, grad_norms = resumed["step"], resumed["losses"], resumed["grad_norms"]
        tokens, trained_tokens = resumed["tokens"], resumed["trained_tokens"]
        eval_nll = resumed.get("eval_nll") or eval_nll
    with training_attention(model, packed, matmul):  # the model's own attention again afterwards
        score(start)
        mark = (time.perf_counter(), tokens)  # time and tokens at the last logging step
        bar = tqdm(total=steps, initial=start, desc="train", unit="step",
                   disable=not (progress and acc.is_main_process))
        for step, batch in enumerate(global_batches(len(encoded), batch_size, steps, cfg.seed)):
            if step < start:
                continue
            for g in opt.param_groups:
                g["lr"] = lr_at(step, steps, cfg)
            mine = batch[rank::world]
            denom = sum(encoded[i].weight for i in batch) if cfg.normalize_weights else len(batch)
            mbs = micro_batches(mine, lengths, cfg.micro_batch_tokens)
            # A process with no example in this step (global batch < number of processes) still runs
            # one forward/backward, scaled by 0, so that it joins the gradient all-reduce.
            idle = not mbs
            if idle:
                mbs = [[batch[0]]]
            step_loss = torch.zeros((), device=acc.device)
            for k, mb in enumerate(mbs):
                tensors, w, real, trained = micro_batch([encoded[i] for i in mb], pad_id, packed, acc.device)
                # Under DDP gradients are averaged over processes: scaling by `world` makes the
                # all-reduced gradient that of the global sum / N. Only the last micro-batch of a
                # step synchronises (DDP/FSDP no_sync; DeepSpeed's accumulation boundary and step).
                last = k == len(mbs) - 1
                scale = 0.0 if idle else world / denom
                if deepspeed:
                    acc.gradient_state._set_sync_gradients(last)
                with (acc.no_sync(net) if world > 1 and not last else contextlib.nullcontext()):
                    loss = weighted_loss_sum(net(*tensors), w) * scale
                    acc.backward(loss)
                step_loss += loss.detach() / world
                if not idle:
                    tokens += real
                    trained_tokens += trained
            if cfg.grad_clip:
                # The prepared module's parameters: FSDP clips its own (sharded) parameters only when
                # handed exactly these; DeepSpeed clips inside its step (`gradient_clipping`).
                norm = acc.clip_grad_norm_(list(net.parameters()), cfg.grad_clip)
                grad_norms.append(None if norm is None else float(norm))
            opt.step()
            opt.zero_grad(set_to_none=True)
            if world > 1:
                step_loss = acc.reduce(step_loss, reduction="sum")
            losses.append(float(step_loss))
            bar.update(1)
            if step % cfg.log_every == 0 or step == steps - 1:
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                now = time.perf_counter()
                log_metrics(acc, {"train/loss": losses[-1], "train/lr": opt.param_groups[0]["lr"],
                                  "train/grad_norm": grad_norms[-1] if grad_norms else None,
                                  "train/tokens_per_s": (tokens - mark[1]) * world / max(now - mark[0], 1e-9)},
                            step + 1)
                mark = (now, tokens)
            if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
                score(step + 1)
            if state_dir and cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < steps:
                save_train_state(acc, state_dir, {"fingerprint": fp, "step": step + 1, "losses": losses,
                                                  "grad_norms": grad_norms, "tokens": tokens,
                                                  "trained_tokens": trained_tokens, "eval_nll": eval_nll})
        bar.close()
        score(steps)
    wall = time.perf_counter() - t0
    model.eval()
    return {
        "steps": steps, "resumed_from_step": start, "examples": len(encoded), "skipped_too_long": skipped,
        "loss": losses, "final_loss": losses[-1], "grad_norm": grad_norms, "wall_s": wall,
        "tokens": tokens * world, "trained_tokens": trained_tokens * world,
        "tokens_per_s": tokens * world / max(wall, 1e-9),
        "peak_memory_bytes": peak_memory_bytes(acc.device),
        **({"eval_nll": eval_nll} if evals else {}),
    }


# ------------------------------------------------------------------ the stage

@dataclass
class TrainStageConfig:
    """`rise train`: rollouts -> examples.jsonl -> fine-tuned checkpoint."""

    model: str = ""                                  # model to fine-tune (hub id or local dir)
    rollouts: list[str] = field(default_factory=list)  # rollouts.jsonl files (a later run's may train another model)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # fp32 master weights: AdamW updating bf16 weights directly loses most updates at lr 1e-5
    dtype: str = "float32"
    # auto: bf16 autocast (fp32 master weights) on GPUs with bf16 and on CPUs with native bf16
    # arithmetic (AMX / AVX512-BF16), else none; a launcher's own setting wins
    mixed_precision: str = "auto"
    device: str = "auto"             # auto | cpu | mps | cuda | cuda:N
    trust_remote_code: bool = False  # let transformers run the model repository's own code
    chat_template: str | None = None  # Jinja string or file, for a model whose tokenizer has none
    eval_files: dict[str, str] = field(default_factory=dict)  # name -> examples JSONL scored over training (rise.probe)

    def __post_init__(self):
        # checked when the config is built, so that the preflight of `rise run` refuses a bad
        # value before any collection runs (not when this stage is reached)
        import re

        from rise.modeling import _DTYPES

        if str(self.dtype).lower() not in (*_DTYPES, "auto"):
            raise InputError(f"dtype must be auto or one of {', '.join(sorted(_DTYPES))}, got {self.dtype!r}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise InputError(f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise InputError(f"device must be auto, cpu, mps, cuda or cuda:N, got {self.device!r}")


def resolve_mixed_precision(setting: str, cpu: bool = False) -> str | None:
    """`auto` -> bf16 on a CUDA GPU with bf16, or when training on a CPU with native bf16
    arithmetic (`rise.modeling.cpu_has_fast_bf16`), else no; None when `accelerate launch`
    decides. `cpu`: training runs on the CPU even if a GPU is present."""
    import os

    import torch

    from rise.modeling import cpu_has_fast_bf16

    if setting != "auto":
        return setting
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None
    if torch.cuda.is_available() and not cpu:
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_fast_bf16() else "no"


def on_cpu(device: str) -> bool:
    """Whether training runs on the CPU: `cpu`, or `auto` on a machine with no CUDA GPU (and no
    Apple MPS). accelerate is told so (`cpu=True`): under a launcher (torchrun, `accelerate
    launch`) the processes then join over gloo, where otherwise each would train its own copy."""
    import torch

    if device == "cpu":
        return True
    if device != "auto":
        return False
    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def training_accelerator(cfg: "TrainStageConfig", out_dir):
    """The `accelerate.Accelerator` of a train stage: device, mixed precision, trackers."""
    from pathlib import Path

    from accelerate import Accelerator

    from rise.tracking import accelerator_kwargs

    cpu = on_cpu(cfg.device)
    mp = resolve_mixed_precision(cfg.mixed_precision, cpu)
    return Accelerator(cpu=cpu, **({"mixed_precision": mp} if mp else {}),
                       **accelerator_kwargs(cfg.train.report_to, Path(out_dir) / "logs"))


def run_train(cfg: TrainStageConfig, out_dir, progress: bool = True) -> dict[str, Any]:
    """Convert rollouts to weighted examples and fine-tune; the checkpoint lands in out_dir/checkpoint.

    Runs as one process or under `accelerate launch` (DDP, FSDP, DeepSpeed): every process trains
    its share of each global batch; only the main process writes files, and under FSDP or
    DeepSpeed the full weights are gathered to it before saving.
    """
    from pathlib import Path

    from rise.config import save_config, to_dict
    from rise.convert import convert, read_rollouts
    from rise.model_card import checkpoint_card
    from rise.modeling import load_model, save_model
    from rise.probe import read_probe
    from rise.records import remove_stale_temps, write_json, write_jsonl, write_text
    from rise.tracking import start_tracking
    from rise.train_state import gathered_state_dict, load_full_state_dict

    if not cfg.model:
        raise InputError("train.model: no model to fine-tune")
    if not cfg.rollouts:
        raise InputError("train.rollouts: no rollout file given")
    out = Path(out_dir)
    acc = training_accelerator(cfg, out)
    main = acc.is_main_process
    remove_stale_temps(out)
    records = read_rollouts(cfg.rollouts)
    eval_sets = read_probe(cfg.eval_files) if cfg.eval_files else None
    examples = convert(records, cfg.convert)
    if not examples:
        raise InputError(f"no training examples from {', '.join(cfg.rollouts)} (criterion={cfg.convert.criterion})")
    if main:
        write_jsonl(out / "examples.jsonl", examples)
        save_config(out / "config.yaml", cfg)
    # Under a launcher each process loads onto its own device (not all onto cuda:0).
    device = str(acc.device) if acc.num_processes > 1 and cfg.device == "auto" else cfg.device
    load = dict(dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code, chat_template=cfg.chat_template)
    model, tok = load_model(cfg.model, device=device, **load)
    if cfg.train.lora:
        model = apply_lora(model, cfg.train)
    state_dir = out / "train_state"
    tracking = start_tracking(acc, to_dict(cfg), run_name=str(out))
    stats = fit(model, tok, examples, cfg.train, progress=progress and main, accelerator=acc,
                state_dir=state_dir, eval_sets=eval_sets)
    if tracking:
        acc.end_training()
    acc.wait_for_everyone()
    gathered = gathered_state_dict(acc)  # every process takes part in the gather
    if main:
        if gathered is not None:
            # Sharded training: the in-memory model holds shards; rebuild it on the CPU.
            model, tok = load_model(cfg.model, device="cpu", **load)
            if cfg.train.lora:
                model = apply_lora(model, cfg.train)
            load_full_state_dict(model, gathered)
        if cfg.train.lora:
            model.save_pretrained(out / "adapter")
            model = model.merge_and_unload()
        stats["examples_by_turn"] = _count_by(examples, "turn")
        stats["processes"] = acc.num_processes
        save_model(model, tok, out / "checkpoint")
        write_text(out / "checkpoint" / "README.md",
                   checkpoint_card(cfg, stats, out / "examples.jsonl", lora=cfg.train.lora))
        write_json(out / "train_stats.json", stats)
        import shutil

        shutil.rmtree(state_dir, ignore_errors=True)  # the checkpoint is complete: no resume needed
    acc.wait_for_everyone()
    return stats


def _count_by(rows: list[dict], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r[key])] = counts.get(str(r[key]), 0) + 1
    return counts
