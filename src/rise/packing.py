"""Packed (unpadded) training micro-batches: no compute on padding.

A padded micro-batch [B, L] runs every linear layer on B*L positions, of which only the real
tokens count (in the embedded default's training, 1.4 padded positions per real one). Packed,
the examples of a micro-batch are concatenated into one row [1, T] (T = the real tokens), with
position ids restarting at 0 for each example, so the embeddings, norms, projections and MLPs
(most of a forward's FLOPs) run on real tokens only. Attention must not cross examples: rise
registers its own attention function with transformers (`AttentionInterface`), which
scatters each example's queries, keys and values into a [S, H, Lmax, D] block (S examples,
right-padded to the longest) and runs causal SDPA there. Right padding under a causal mask is
exact for the real positions (a real query never sees a later pad) and the padded outputs are
dropped, so the loss equals the padded path's up to floating-point summation order.

Used by `rise.train.fit` when `train.packing` is on (auto: for a model that runs transformers'
sdpa or eager attention without logit soft-capping). transformers builds no mask for an
attention function it does not know, which is what the packed forward wants: the function gets
the example boundaries as `cu_seq_lens_q` (transformers' own name for them, passed to the model's
forward and down to every attention call).
"""
from __future__ import annotations

import contextlib
from typing import Any

ATTENTION = "rise_packed"


def supports_packing(config) -> bool:
    """Whether a model's attention can run packed: sdpa or eager attention (the implementations
    `packed_attention` replaces exactly), and no attention logit soft-capping (Gemma 2). Sliding
    windows are applied per example."""
    text = getattr(config, "text_config", None) or config
    impl = getattr(text, "_attn_implementation", None)
    return impl in ("sdpa", "eager") and not getattr(text, "attn_logit_softcapping", None)


def register() -> None:
    """Make `ATTENTION` a transformers attention implementation (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, packed_attention)


def segment_index(cu_seqlens, device):
    """Per example, the packed positions of its tokens, right-padded: (idx [S, Lmax] long,
    valid [S, Lmax] bool). Padded slots point at position 0 (never attended to, output dropped)."""
    import torch

    cu = cu_seqlens.to(device=device, dtype=torch.long)
    lens = cu[1:] - cu[:-1]                                                  # [S]
    width = int(lens.max())
    offs = torch.arange(width, device=device)                                # [Lmax]
    valid = offs[None, :] < lens[:, None]                                    # [S, Lmax]
    idx = torch.where(valid, cu[:-1, None] + offs[None, :], torch.zeros((), dtype=torch.long, device=device))
    return idx, valid


def packed_attention(module, query, key, value, attention_mask=None, dropout: float = 0.0,
                     scaling: float | None = None, sliding_window: int | None = None, **kwargs):
    """Causal attention within each packed example.

    query [1, H, T, D], key / value [1, Hkv, T, D] (T = real tokens of the micro-batch);
    kwargs["cu_seq_lens_q"] [S+1]: example boundaries. Returns ([1, T, H, D], None), the layout
    of transformers' sdpa_attention_forward.
    """
    import torch
    import torch.nn.functional as F

    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        raise RuntimeError("rise packed attention called without cu_seq_lens_q (a forward outside rise.packing)")
    idx, valid = segment_index(cu, query.device)
    s, width = idx.shape
    q = query[0][:, idx].transpose(0, 1)                                     # [S, H, Lmax, D]
    k = key[0][:, idx].transpose(0, 1)                                       # [S, Hkv, Lmax, D]
    v = value[0][:, idx].transpose(0, 1)
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    sdpa: dict[str, Any] = {"scale": scaling, "dropout_p": dropout if module.training else 0.0}
    if sliding_window is not None and sliding_window < width:
        pos = torch.arange(width, device=query.device)
        diff = pos[:, None] - pos[None, :]                                   # q - k
        sdpa["attn_mask"] = ((diff >= 0) & (diff < sliding_window))[None, None]  # transformers: k > q - window
    else:
        sdpa["is_causal"] = True
    out = F.scaled_dot_product_attention(q, k, v, **sdpa)                   # [S, H, Lmax, D]
    out = out.transpose(1, 2)[valid]                                         # [T, H, D], packed order
    return out.unsqueeze(0), None


def collate_packed(batch: list, pad_id: int | None = None) -> dict[str, Any]:
    """One packed row of `batch` (rise.train.Encoded examples):
    input_ids, position_ids [1, T]; target_mask [T] (position p predicts token p+1 of the same
    example, which is trained); segments [T] (the example of each position); cu_seq_lens [S+1];
    weights [S]. `pad_id` is unused (nothing is padded); it keeps collate's signature."""
    import torch

    ids, pos, tmask, seg, cu = [], [], [], [], [0]
    for r, e in enumerate(batch):
        n = len(e.input_ids)
        ids.extend(e.input_ids)
        pos.extend(range(n))
        tmask.extend(list(e.trained[1:]) + [False])
        seg.extend([r] * n)
        cu.append(cu[-1] + n)
    return {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "position_ids": torch.tensor([pos], dtype=torch.long),
        "target_mask": torch.tensor(tmask, dtype=torch.bool),
        "segments": torch.tensor(seg, dtype=torch.long),
        "cu_seq_lens": torch.tensor(cu, dtype=torch.int32),
        "weights": torch.tensor([e.weight for e in batch], dtype=torch.float32),
    }


def packed_nll(model, input_ids, position_ids, target_mask, segments, cu_seq_lens):
    """Mean token NLL of each packed example's trained tokens: [S] (as rise.train.per_example_nll).
    The LM head runs on the P = target_mask.sum() trained positions only."""
    import torch
    import torch.nn.functional as F

    from rise.train import finish_logits

    cu = cu_seq_lens.to(input_ids.device)
    longest = int((cu[1:] - cu[:-1]).max())
    hidden = model.get_decoder()(input_ids=input_ids, position_ids=position_ids, cu_seq_lens_q=cu,
                                 cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest).last_hidden_state
    at = torch.nonzero(target_mask, as_tuple=True)[0]                        # [P]
    targets = input_ids[0, at + 1]                                           # [P]
    logits = finish_logits(model.config, model.get_output_embeddings()(hidden[0, at]))  # [P, V]
    nll = F.cross_entropy(logits.float(), targets, reduction="none")        # [P]
    rows = segments[at]
    s = cu.numel() - 1
    sums = torch.zeros(s, device=nll.device).index_add_(0, rows, nll)
    counts = torch.zeros(s, device=nll.device).index_add_(0, rows, torch.ones_like(nll))
    return sums / counts.clamp_min(1)


def micro_batch(batch: list, pad_id: int, packed: bool, device):
    """The forward's tensors of one micro-batch on `device`, its weights [B], and its real and
    trained token counts (from the host copies: no device sync)."""
    if packed:
        t = collate_packed(batch)
        names = ("input_ids", "position_ids", "target_mask", "segments", "cu_seq_lens")
        real, trained = t["input_ids"].numel(), int(t["target_mask"].sum())
        return tuple(t[n].to(device, non_blocking=True) for n in names), t["weights"].to(device), real, trained
    from rise.train import collate

    ids, attn, tmask, w = collate(batch, pad_id)
    tensors = tuple(x.to(device, non_blocking=True) for x in (ids, attn, tmask))
    return tensors, w.to(device), int(attn.sum()), int(tmask.sum())


# `train.packing auto` packs models at least this wide. Measured here (2 threads, bf16): SmolLM2-135M
# (576 wide) LoRA training 1.26-1.31x packed; the embedded default (128 wide), whose layers are
# too small for the saved padding to outweigh the per-layer gather and scatter, 0.92-0.97x in the
# main job (1.12x on bench/trainer.py's 670-token examples, `--packing on`).
AUTO_MIN_WIDTH = 256


def resolve_packing(cfg, model) -> bool:
    """train.packing (a rise.train.TrainConfig's) -> whether fit packs its micro-batches."""
    from rise.errors import InputError

    if cfg.packing == "auto":
        text = getattr(model.config, "text_config", None) or model.config
        wide = (getattr(text, "hidden_size", 0) or 0) >= AUTO_MIN_WIDTH
        return wide and not cfg.full_logits and supports_packing(model.config)
    if cfg.packing == "off":
        return False
    if cfg.full_logits:
        raise InputError("train.packing=on computes the LM head at the trained positions only; "
                         "it cannot be combined with train.full_logits")
    if not supports_packing(model.config):
        raise InputError(f"train.packing=on: this model's attention ({model.config._attn_implementation!r}) "
                         "cannot run packed; use train.packing=auto or off")
    return True


@contextlib.contextmanager
def packed_model(model, on: bool):
    """While fitting packed, the model's attention is rise.packing's (restored afterwards, so the
    saved checkpoint and any later forward use the model's own)."""
    if not on:
        yield
        return
    register()
    config = model.config
    old = config._attn_implementation
    config._attn_implementation = ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = old
