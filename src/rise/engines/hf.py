"""`HFBackend`: batched sampling from a Hugging Face causal LM in this process (CPU or GPU).

RISE spends most of its compute here (collection draws several samples for every state of every
rollout; evaluation runs K parallel samples and T sequential turns), so `HFBackend` batches every
state of a call together instead of calling `model.generate` once per state:

- every distinct prompt is rendered with the tokenizer's chat template, tokenised once and
  prefilled ONCE; its KV cache is copied to its n sample rows, and the first token of every row
  is drawn from the one prefill distribution;
- prompts are sorted by length, longest first, and decoded `batch_size` rows (prompt x sample) at
  a time, left padded, with position ids that skip the padding (cumsum(mask) - 1, as `generate`);
- Llama-family models (Llama, Qwen2, Mistral, SmolLM2, the embedded default) decode on
  `rise.engines.kv_decode.KVDecoder`: a preallocated KV cache, no per-step allocation, and a
  finished row's slot refilled at once with the next waiting row (continuous batching);
- other models decode with transformers' forward and `DynamicCache`: finished rows are dropped
  from the batch once a quarter have finished (checked every step on CPU, every 4 steps on an
  accelerator, where each check is a host sync);
- sampling uses a private `torch.Generator` seeded from `seed` (never the global RNG), so the same
  seed, inputs and batch size give the same outputs on CPU. A token is drawn by the exponential
  race (argmax of p_i / E_i, E_i ~ Exp(1)), which samples from p exactly and costs one elementwise
  pass instead of `torch.multinomial`'s cumulative sums; temperature 0 is greedy (one row per
  prompt, copied n times) and top-p keeps the smallest set of tokens whose mass reaches top_p.

`HFBackend(..., decoder="generate")` runs plain `model.generate` instead (for a model whose
forward neither loop can drive); it reseeds the global RNG inside `torch.random.fork_rng`.

torch and transformers are imported lazily: `import rise.engines.hf` is cheap.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

from rise.engines.base import (
    BackendBase,
    SamplingParams,
    check_request,
    fill_greedy,
    progress_bar,
    samples_to_draw,
)
from rise.errors import InputError


def render_prompt(tokenizer: Any, messages: Sequence[dict]) -> str:
    """The prompt text for `messages`, ending with the assistant turn's opening."""
    if not messages:
        raise InputError("a conversation needs at least one message")
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError(
            f"tokenizer {type(tokenizer).__name__} has no chat template; set tokenizer.chat_template"
        )
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    try:
        return [int(v) for v in value]
    except TypeError:
        return [int(value)]


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """Token ids that end a completion: the tokenizer's eos, then the generation config's eos ids."""
    ids = _as_id_list(getattr(tokenizer, "eos_token_id", None))
    gen_cfg = getattr(model, "generation_config", None)
    if gen_cfg is not None:
        ids += _as_id_list(getattr(gen_cfg, "eos_token_id", None))
    seen: dict[int, None] = {}
    for i in ids:
        seen.setdefault(i, None)
    return list(seen)


def _forward_params(model: Any) -> set[str]:
    """Parameter names of the underlying model's forward (looks through PEFT wrappers)."""
    target = model
    if hasattr(target, "get_base_model"):
        try:
            target = target.get_base_model()
        except Exception:  # pragma: no cover - defensive
            pass
    try:
        return set(inspect.signature(target.forward).parameters)
    except (TypeError, ValueError):  # pragma: no cover - defensive
        return set()


@dataclass
class _Chunk:
    uid: int  # index of the distinct prompt
    rows: int  # sample rows drawn for it in this chunk


DECODERS = ("auto", "kv", "hf", "generate")


def sample_tokens(logits, params: SamplingParams, gen):
    """One token per row of `logits` [B, V] -> [B] (see the module doc: the exponential race)."""
    import torch

    if params.greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, sorted_idx = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of the more likely tokens
        probs = torch.zeros_like(probs).scatter_(-1, sorted_idx, sorted_p.masked_fill(before >= params.top_p, 0.0))
    # E = -log U is Exp(1); torch's own exponential_ is ~5x slower on CPU than rand + log
    race = torch.rand(probs.shape, generator=gen, device=probs.device).log_().neg_()
    return (probs / race).argmax(dim=-1)


class HFBackend(BackendBase):
    """Batched sampling from a Hugging Face causal LM with a chat template (CPU or GPU).

    batch_size bounds the rows (prompt x sample) decoded at once.  progress: a truthy value
    shows a tqdm bar over conversations (a string is its description).  max_prompt_tokens: longer
    prompts keep their last max_prompt_tokens tokens (with a warning).  decoder: "auto" (the KV
    decoder for Llama-family models, else "hf"), "kv", "hf" (transformers' forward in our loop),
    "generate" (plain `model.generate`); use_generate=True is decoder="generate".
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 64,
        progress: bool | str = False,
        max_prompt_tokens: int | None = None,
        use_generate: bool = False,
        decoder: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if max_prompt_tokens is not None and max_prompt_tokens < 1:
            raise InputError(f"max_prompt_tokens must be >= 1, got {max_prompt_tokens}")
        if decoder not in DECODERS:
            raise InputError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        from rise.engines.kv_decode import KVDecoder, unsupported_reason

        decoder = "generate" if use_generate else decoder
        reason = unsupported_reason(model)
        if decoder == "kv" and reason:
            raise InputError(f"decoder 'kv' cannot run this model: {reason}; use decoder 'hf'")
        if decoder == "auto":
            decoder = "hf" if reason else "kv"
        self.decoder = decoder
        self._kv = KVDecoder(model) if decoder == "kv" else None
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        self.max_prompt_tokens = max_prompt_tokens
        self.use_generate = decoder == "generate"
        self.stop_ids = stop_token_ids(tokenizer, model)
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = self.stop_ids[0] if self.stop_ids else 0
        self.pad_id = int(pad)
        params = _forward_params(model)
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._logits_kw = next(
            (k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None
        )
        # Check for finished rows every sync_every steps (None: every step on CPU, every 4 on an
        # accelerator, where each check waits for the device); rows that finish in between keep
        # decoding and their tokens are discarded.
        self.sync_every: int | None = None
        self.truncated_prompts = 0  # prompts cut to max_prompt_tokens so far

    def close(self) -> None:
        """Drop the references to the model, so its memory can be freed."""
        self.model = self._kv = None

    # ------------------------------------------------------------------ public API

    def generate(
        self, conversations: list[list[dict]], n: int, params: SamplingParams, seed: int
    ) -> list[list[str]]:
        if not check_request(conversations, n):
            return []
        if self.model is None:
            raise RuntimeError("this HFBackend was closed")
        import torch

        # Distinct prompts, each tokenised and prefilled once.
        texts = [render_prompt(self.tokenizer, conv) for conv in conversations]
        uid_of: dict[str, int] = {}
        owners: list[list[int]] = []
        for i, text in enumerate(texts):
            uid = uid_of.setdefault(text, len(uid_of))
            if uid == len(owners):
                owners.append([])
            owners[uid].append(i)
        prompt_ids = self._encode(list(uid_of))
        # greedy rows would be identical: decode one per distinct prompt, copy it
        need = [samples_to_draw(n, params) * (1 if params.greedy else len(o)) for o in owners]
        order = sorted(range(len(prompt_ids)), key=lambda u: (-len(prompt_ids[u]), u))

        bar = progress_bar(self.progress, len(conversations), "generate", "prompt")
        model = self.model
        was_training = bool(getattr(model, "training", False))
        if was_training:
            model.eval()
        try:
            with torch.inference_mode():
                gen = torch.Generator(device=model.device)
                gen.manual_seed(int(seed))
                if self._kv is not None:
                    rows = self._kv.run(
                        [prompt_ids[u] for u in order], [need[u] for u in order],
                        params.max_new_tokens, self.batch_size, self.stop_ids, self.pad_id,
                        lambda logits, g: sample_tokens(logits, params, g), gen,
                        on_done=None if bar is None else (lambda i: bar.update(len(owners[order[i]]))))
                    results: list[list[list[int]]] = [[] for _ in prompt_ids]
                    at = 0
                    for u in order:
                        results[u] = rows[at:at + need[u]]
                        at += need[u]
                else:
                    results = self._decode_batches(prompt_ids, order, need, owners, params, gen, seed, bar)
        finally:
            if was_training:
                model.train()
            if bar is not None:
                bar.close()

        decoded = [
            self.tokenizer.batch_decode(r, skip_special_tokens=True) if r else [] for r in results
        ]
        out: list[list[str]] = [[] for _ in conversations]
        for uid, conv_ids in enumerate(owners):
            for j, ci in enumerate(conv_ids):
                mine = decoded[uid] if params.greedy else decoded[uid][j * n : (j + 1) * n]
                out[ci] = fill_greedy(mine, n, params)
        return out

    def _decode_batches(self, prompt_ids, order, need, owners, params, gen, seed, bar):
        """The transformers-forward loops: rows packed into batches of at most batch_size."""
        chunks: list[_Chunk] = []
        for uid in order:
            left = need[uid]
            while left > 0:
                take = min(left, self.batch_size)
                chunks.append(_Chunk(uid, take))
                left -= take
        batches: list[list[_Chunk]] = []
        for ch in chunks:
            if batches and sum(c.rows for c in batches[-1]) + ch.rows <= self.batch_size:
                batches[-1].append(ch)
            else:
                batches.append([ch])
        results: list[list[list[int]]] = [[] for _ in prompt_ids]
        for bi, batch in enumerate(batches):
            ids = [prompt_ids[c.uid] for c in batch]
            reps = [c.rows for c in batch]
            if self.use_generate:
                rows = self._run_generate(ids, reps, params, int(seed) + bi)
            else:
                rows = self._run_batch(ids, reps, params, gen)
            k = 0
            for c in batch:
                results[c.uid].extend(rows[k : k + c.rows])
                k += c.rows
                if bar is not None and len(results[c.uid]) == need[c.uid]:
                    bar.update(len(owners[c.uid]))
        return results

    # ------------------------------------------------------------------ helpers

    def _encode(self, prompts: list[str]) -> list[list[int]]:
        # The chat template already holds any BOS / special tokens.
        enc = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        out = []
        for p, ids in zip(prompts, enc, strict=True):
            ids = list(ids)
            if not ids:
                raise InputError(f"prompt tokenises to nothing: {p!r}")
            if self.max_prompt_tokens is not None and len(ids) > self.max_prompt_tokens:
                self.truncated_prompts += 1
                warnings.warn(
                    f"prompt of {len(ids)} tokens cut to its last {self.max_prompt_tokens}",
                    stacklevel=3,
                )
                ids = ids[-self.max_prompt_tokens :]
            out.append(ids)
        return out

    def _left_pad(self, prompts: list[list[int]]):
        import torch

        device = self.model.device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        return input_ids.to(device), mask.to(device)

    def _forward(self, input_ids, mask, position_ids, cache):
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "position_ids": position_ids,
            "use_cache": True,
        }
        if cache is not None:
            kwargs[self._cache_kw] = cache
        if self._logits_kw is not None:
            kwargs[self._logits_kw] = 1
        out = self.model(**kwargs)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = out.past_key_values
        return out.logits[:, -1, :], new_cache

    def _run_batch(
        self, prompts: list[list[int]], repeats: list[int], params: SamplingParams, gen
    ) -> list[list[int]]:
        """Token ids of sum(repeats) completions: repeats[i] rows for prompts[i], in order."""
        import torch

        total = sum(repeats)
        if params.max_new_tokens == 0:
            return [[] for _ in range(total)]
        device = self.model.device
        input_ids, mask = self._left_pad(prompts)
        positions = (mask.cumsum(-1) - 1).clamp_(min=0)
        logits, cache = self._forward(input_ids, mask, positions, None)

        # Expand the prompt rows to sample rows: one gather of the cache along the batch axis.
        if total != len(prompts):
            expand = torch.repeat_interleave(
                torch.arange(len(prompts), device=device),
                torch.tensor(repeats, device=device),
            )
            if not hasattr(cache, "batch_select_indices"):
                raise TypeError(
                    f"{type(cache).__name__} cannot be expanded per sample; "
                    "use HFBackend(..., use_generate=True) for this model"
                )
            cache.batch_select_indices(expand)
            logits, mask = logits[expand], mask[expand]
            positions = positions[expand]
        pos = positions[:, -1]

        stop = torch.tensor(self.stop_ids or [-1], device=device)
        tokens = torch.full((total, params.max_new_tokens), -1, dtype=torch.long, device=device)
        row_ids = torch.arange(total, device=device)  # original row of each live row
        done = torch.zeros(total, dtype=torch.bool, device=device)
        check_every = self.sync_every or (1 if device.type == "cpu" else 4)
        for step in range(params.max_new_tokens):
            tok = sample_tokens(logits, params, gen)
            finished = torch.isin(tok, stop)
            tokens[row_ids, step] = torch.where(done | finished, -1, tok)
            done |= finished
            if step == params.max_new_tokens - 1:
                break
            if step % check_every == check_every - 1:  # a host sync: not every step on a GPU
                n_done = int(done.sum())
                if n_done == done.numel():
                    break
                if 4 * n_done >= done.numel():  # drop finished rows from batch and cache
                    keep = (~done).nonzero().squeeze(-1)
                    cache.batch_select_indices(keep)
                    mask, pos, tok = mask[keep], pos[keep], tok[keep]
                    row_ids, done = row_ids[keep], done[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            pos = pos + 1
            logits, cache = self._forward(tok[:, None], mask, pos[:, None], cache)

        rows = tokens.tolist()
        return [[t for t in r if t >= 0] for r in rows]

    def _run_generate(
        self, prompts: list[list[int]], repeats: list[int], params: SamplingParams, seed: int
    ) -> list[list[int]]:
        """Fallback: plain `model.generate` on the rows (prompt copies), same return as _run_batch."""
        import torch

        if params.max_new_tokens == 0:
            return [[] for _ in range(sum(repeats))]
        device = self.model.device
        input_ids, mask = self._left_pad(prompts)
        expand = torch.repeat_interleave(
            torch.arange(len(prompts), device=device), torch.tensor(repeats, device=device)
        )
        input_ids, mask = input_ids[expand], mask[expand]
        kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_new_tokens,
            eos_token_id=self.stop_ids or None,
            pad_token_id=self.pad_id,
        )
        if params.greedy:
            kwargs.update(do_sample=False)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            seqs = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        stop = set(self.stop_ids)
        out = []
        for row in seqs[:, input_ids.shape[1] :].tolist():
            cut = next((i for i, t in enumerate(row) if t in stop), len(row))
            out.append(row[:cut])
        return out
