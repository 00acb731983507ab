"""rise's attention for training: causal attention without a padding mask, and packed examples.

`rise.train.fit` swaps the model's attention for one of these (registered with transformers'
`AttentionInterface`, restored afterwards, so the checkpoint and every later forward use the
model's own):

- `rise_matmul` (`train.attention auto` on a CPU): training micro-batches are right-padded, and
  under a causal mask a real query never sees a later pad, so no padding mask is needed. The
  attention is then three ops per block of query rows over grouped heads (`causal_attention`):
  scores = baddbmm(causal bias, q, k^T), softmax in float32, probabilities @ v (K and V are
  never copied per query group). Why not torch's SDPA: on a CPU its flash kernel is slow at
  the head dimensions of small models, above all backwards (see BLOCK for the figures);
  transformers' eager attention computes the same maths over the whole square, with a
  [B, 1, L, L] mask built from the padding mask first. Numerics are eager's: matmuls in the
  input dtype (bf16 under autocast), softmax in float32, probabilities cast back. Long rows of a
  deep model fall back to SDPA (MAX_SAVED_BYTES), whose flash kernel keeps no L x L matrix.
- packed micro-batches (`train.packing`, rise.packing): the examples of a micro-batch run as one
  row [1, T]; attention gathers each example's queries, keys and values into a right-padded
  [S, H, Lmax, D] block and runs causal attention there (the matmul kernel above, or SDPA
  under `rise_sdpa` on an accelerator), so it never crosses examples. transformers builds no
  mask for an attention function it does not know; the example boundaries arrive as
  `cu_seq_lens_q` (transformers' own name, passed from the model's forward to every layer).

Shapes: B rows, S packed examples, H query heads, K key/value heads (H = K * rep), L positions,
D head dim, T packed tokens.
"""
from __future__ import annotations

import contextlib
from functools import lru_cache, partial
from typing import Any

MATMUL, SDPA = "rise_matmul", "rise_sdpa"


def supports(config) -> bool:
    """Whether a model's attention can be replaced: transformers' sdpa or eager attention (the
    implementations these functions compute exactly) without logit soft-capping (Gemma 2).
    Sliding windows are applied."""
    text = getattr(config, "text_config", None) or config
    impl = getattr(text, "_attn_implementation", None)
    return impl in ("sdpa", "eager") and not getattr(text, "attn_logit_softcapping", None)


@lru_cache(maxsize=8)
def causal_allowed(length: int, window: int | None, device):
    """[L, L] bool: query i may see key j (j <= i, and i - j < window when there is one)."""
    import torch

    pos = torch.arange(length, device=device)
    diff = pos[:, None] - pos[None, :]                                       # query - key
    seen = diff >= 0
    if window is not None:
        seen &= diff < window                                                # transformers: k > q - window
    return seen


@lru_cache(maxsize=8)
def causal_bias(length: int, window: int | None, dtype, device):
    """`causal_allowed` as an additive mask [L, L]: 0 or -inf."""
    import torch

    seen = causal_allowed(length, window, device)
    return torch.zeros(length, length, dtype=dtype, device=device).masked_fill_(~seen, float("-inf"))


# Query rows per block of `causal_attention`. A block attends to the keys up to its last row only
# (the causal skip: about half the score matrix is never computed), and its scores stay small
# enough to be reused from cache by the softmax and the second matmul. Measured fwd+bwd, bf16, 2
# threads, 4096 tokens: vs one unblocked block 1.7-2.5x at 512-2048 positions; vs torch's SDPA
# 1.9-2.4x at the embedded default's shape (4 heads of 32) up to 512 positions, 1.1-1.2x at
# 1024-2048; SmolLM2-135M's (9 heads of 64, 3 kv heads) 1.6-3x; Gemma 3 270M's (4 of 256) 2.5-3.7x.
BLOCK = 128


def causal_attention(query, key, value, scaling: float, sliding_window: int | None = None,
                     dropout: float = 0.0):
    """Causal attention over right-padded rows: query [B, H, L, D], key / value [B, K, L, D]
    -> [B, L, H, D] (transformers' attention-output layout). Head h reads kv head h // rep, the
    order of transformers' `repeat_kv`; per block of BLOCK query positions,
    scores = q k^T * scaling + causal bias [B*K, rep*block, keys], softmax in float32."""
    import torch
    import torch.nn.functional as F

    b, heads, length, d = query.shape
    groups = key.shape[1]
    rep = heads // groups
    dtype = query.dtype
    window = sliding_window if sliding_window is not None and sliding_window < length else None
    bias = causal_bias(length, window, dtype, query.device)                # [L, L]
    q = query.reshape(b * groups, rep, length, d)
    k = key.to(dtype).reshape(b * groups, length, d)
    v = value.to(dtype).reshape(b * groups, length, d)
    outs = []
    for start in range(0, length, BLOCK):
        end = min(length, start + BLOCK)
        lo = 0 if window is None else max(0, start - window + 1)         # keys any row of the block sees
        qb = q[:, :, start:end].reshape(b * groups, rep * (end - start), d)
        bb = bias[start:end, lo:end]
        if rep > 1:
            bb = bb.repeat(rep, 1)
        scores = torch.baddbmm(bb, qb, k[:, lo:end].transpose(1, 2), alpha=scaling)
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(dtype)
        if dropout:
            probs = F.dropout(probs, p=dropout, training=True)
        outs.append(torch.bmm(probs, v[:, lo:end]).view(b * groups, rep, end - start, d))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.view(b, heads, length, d).transpose(1, 2)


def saved_bytes(batch: int, heads: int, length: int) -> int:
    """What `causal_attention` keeps for the backward pass of one layer: the float32 softmax
    output and its cast of every block's scores (about half of B x H x L x L)."""
    blocks = range(0, length, BLOCK)
    return 6 * batch * heads * sum(min(BLOCK, length - s) * min(length, s + BLOCK) for s in blocks)


# Above this, for all layers of one forward, SDPA's flash kernel (which keeps no L x L matrix)
# runs instead of `causal_attention`: long rows of a deep model (SmolLM2-135M, 30 layers, 8 rows
# of 1024 positions: 7.6 GB; the embedded default's micro-batches of 12 x 330: 0.1 GB).
MAX_SAVED_BYTES = 2 << 30


def _sdpa(query, key, value, scaling: float, sliding_window: int | None = None, dropout: float = 0.0):
    """The same as `causal_attention` with torch's SDPA (fused kernels on an accelerator)."""
    import torch.nn.functional as F

    length = query.shape[2]
    rep = query.shape[1] // key.shape[1]
    if rep > 1:
        key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    kw: dict[str, Any] = {"scale": scaling, "dropout_p": dropout}
    if sliding_window is not None and sliding_window < length:
        kw["attn_mask"] = causal_allowed(length, sliding_window, query.device)
    else:
        kw["is_causal"] = True
    return F.scaled_dot_product_attention(query, key, value, **kw).transpose(1, 2)


def segment_index(cu_seqlens, device):
    """Per packed example, the packed positions of its tokens, right-padded: (idx [S, Lmax] long,
    valid [S, Lmax] bool). Padded slots point at position 0 (never attended to, output dropped)."""
    import torch

    cu = cu_seqlens.to(device=device, dtype=torch.long)
    lens = cu[1:] - cu[:-1]                                                  # [S]
    width = int(lens.max())
    offs = torch.arange(width, device=device)                                # [Lmax]
    valid = offs[None, :] < lens[:, None]                                    # [S, Lmax]
    idx = torch.where(valid, cu[:-1, None] + offs[None, :], torch.zeros((), dtype=torch.long, device=device))
    return idx, valid


def attention_forward(module, query, key, value, attention_mask=None, dropout: float = 0.0,
                      scaling: float | None = None, sliding_window: int | None = None, *,
                      kernel: str = MATMUL, **kwargs):
    """transformers' attention interface: query [B, H, L, D], key / value [B, K, L, D] ->
    ([B, L, H, D], None). Right-padded rows (attention_mask is ignored: see the module doc), or
    with kwargs["cu_seq_lens_q"] [S+1] one packed row of S examples (B = 1, L = T)."""
    if kwargs.get("s_aux") is not None:
        from rise.errors import InputError

        raise InputError("rise's training attention has no attention sinks (this model uses them); "
                         "set train.attention=model and train.packing=off")
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    dropout = dropout if module.training else 0.0
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        return _kernel(kernel, module, query)(query, key, value, scaling, sliding_window, dropout), None
    idx, valid = segment_index(cu, query.device)
    blocks = [t[0][:, idx].transpose(0, 1) for t in (query, key, value)]    # [S, H or K, Lmax, D]
    out = _kernel(kernel, module, blocks[0])(*blocks, scaling, sliding_window, dropout)  # [S, Lmax, H, D]
    return out[valid].unsqueeze(0), None                                     # [1, T, H, D], packed order


def _kernel(kernel: str, module, query):
    """`causal_attention` for MATMUL, unless what it would keep for backward exceeds
    MAX_SAVED_BYTES over the model's layers; else `_sdpa`. query: [B, H, L, D]."""
    import torch

    if kernel != MATMUL:
        return _sdpa
    if torch.is_grad_enabled():
        layers = getattr(getattr(module, "config", None), "num_hidden_layers", 1) or 1
        if layers * saved_bytes(query.shape[0], query.shape[1], query.shape[2]) > MAX_SAVED_BYTES:
            return _sdpa
    return causal_attention


def register() -> None:
    """Make MATMUL and SDPA transformers attention implementations (idempotent)."""
    from transformers import AttentionInterface

    for name in (MATMUL, SDPA):
        AttentionInterface.register(name, partial(attention_forward, kernel=name))


def resolve_attention(setting: str, model, device) -> bool:
    """train.attention -> whether fit uses rise's matmul attention (`causal_attention`):
    auto: when training on a CPU a model `supports` covers; rise: always (an error where it
    cannot); model: never."""
    from rise.errors import InputError

    if setting == "model":
        return False
    ok = supports(model.config)
    if setting == "rise":
        if not ok:
            raise InputError(f"train.attention=rise: this model's attention "
                             f"({model.config._attn_implementation!r}) cannot be replaced; use auto or model")
        return True
    return ok and getattr(device, "type", str(device)) == "cpu"


@contextlib.contextmanager
def training_attention(model, packed: bool, matmul: bool):
    """While fitting, the model's attention is rise's: MATMUL (`matmul`), else SDPA when
    `packed`, else the model's own. Restored afterwards."""
    name = MATMUL if matmul else SDPA if packed else None
    if name is None:
        yield
        return
    register()
    config = model.config
    old = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = old
