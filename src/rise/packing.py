"""Packed (unpadded) training micro-batches: no compute on padding.

A padded micro-batch [B, L] runs every linear layer on B*L positions, of which only the real
tokens count (in the embedded default's training, 1.4 padded positions per real one). Packed,
the examples of a micro-batch are concatenated into one row [1, T] (T = the real tokens), with
position ids restarting at 0 for each example, so the embeddings, norms, projections and MLPs
(most of a forward's FLOPs) run on real tokens only. Attention must not cross examples:
`rise.attention` gathers each example's queries, keys and values into a [S, H, Lmax, D] block
(S examples, right-padded to the longest) and runs causal attention there. Right padding under a
causal mask is exact for the real positions (a real query never sees a later pad) and the padded
outputs are dropped, so the loss equals the padded path's up to floating-point summation order.

Used by `rise.train.fit` when `train.packing` is on (auto: for a model at least AUTO_MIN_WIDTH
wide that runs transformers' sdpa or eager attention without logit soft-capping).
"""
from __future__ import annotations

from typing import Any

from rise.attention import supports


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
# main job (1.12x on bench/trainer.py's 670-token examples, `--packing on`); with rise.attention's
# matmul attention in both, 0.87x on the main job's RISE examples.
AUTO_MIN_WIDTH = 256


def resolve_packing(cfg, model) -> bool:
    """train.packing (a rise.train.TrainConfig's) -> whether fit packs its micro-batches."""
    from rise.errors import InputError

    if cfg.packing == "auto":
        text = getattr(model.config, "text_config", None) or model.config
        wide = (getattr(text, "hidden_size", 0) or 0) >= AUTO_MIN_WIDTH
        return wide and not cfg.full_logits and supports(model.config)
    if cfg.packing == "off":
        return False
    if cfg.full_logits:
        raise InputError("train.packing=on computes the LM head at the trained positions only; "
                         "it cannot be combined with train.full_logits")
    if not supports(model.config):
        raise InputError(f"train.packing=on: this model's attention ({model.config._attn_implementation!r}) "
                         "cannot run packed; use train.packing=auto or off")
    return True
