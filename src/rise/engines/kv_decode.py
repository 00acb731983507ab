"""A decode loop over a preallocated KV cache for Llama-family models, refilled as rows finish.

Why our own forward: on small models a decode step is bound by per-step overhead, not arithmetic
(the embedded 1.2M model at 64 rows is ~150 MFLOP a step, a fraction of a millisecond of this
CPU). transformers' forward grows its `DynamicCache` with a `torch.cat` per layer per step,
builds masks and positions anew and goes through ~15 Python module calls per layer; this module
runs the same maths (Llama / Qwen2 / Mistral: RMSNorm, rotary embeddings, grouped-query
attention, SwiGLU) as a few tensor ops per layer on the model's OWN weights (read at every call,
so a model trained in place is always current), with

- one cache per batch, `[rows, kv_heads, capacity, head_dim]` per layer: decode writes a column
  in place (no per-step allocation). Attention reads the whole capacity, so the capacity follows
  the live sequences: when the write column reaches it (or it holds far more columns than the
  longest live row), one gather per layer compacts every row to the left and re-sizes the
  cache to that length plus `HEADROOM` columns (every ~HEADROOM steps, about one step's traffic);
- every row writing at the same column (prompts are left padded to a common width), so a step is
  one `index_put` per layer; a boolean "valid" matrix marks the columns each row may attend to;
- continuous refill: when a row finishes, the next waiting prompt takes its slot. The new prompt
  is prefilled into the columns right before the current write column (prompts come longest
  first, and every live row holds at least its own prompt, so every later prompt fits), and
  decodes on in lock-step with the others;
- each distinct prompt prefilled once, right-padded (causal attention needs no mask then) in a
  scratch cache as wide as the prompts, and its keys and values copied right-aligned to its n
  sample rows;
- on a CPU, q|k|v and gate|up each one matmul (`fuse_weights`), and attention as baddbmm with an
  additive mask built once per step for every layer.

Not covered (the caller falls back to transformers' own forward): other architectures, sliding
windows, PEFT wrappers, rope types whose tables change with the sequence length.

Shapes: B rows, W prompt width, C cache capacity, H heads, K kv heads, D head dim, V vocab.
"""
from __future__ import annotations

from typing import Any, Callable

SUPPORTED_TYPES = ("llama", "qwen2", "mistral")


def unsupported_reason(model: Any) -> str | None:
    """Why `model` cannot run on this decoder (None: it can)."""
    cfg = getattr(model, "config", None)
    mtype = getattr(cfg, "model_type", None)
    if mtype not in SUPPORTED_TYPES:
        return f"model type {mtype!r} (supported: {', '.join(SUPPORTED_TYPES)})"
    if hasattr(model, "get_base_model"):
        return "a PEFT wrapper (merge the adapter first)"
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
        return "an activation or tensor-parallel layout other than silu / tp=1"
    window = getattr(cfg, "sliding_window", None)
    if window and getattr(cfg, "use_sliding_window", mtype == "mistral"):
        return f"a sliding attention window ({window})"
    rope = getattr(cfg, "rope_scaling", None) or {}
    if (rope.get("rope_type") or rope.get("type") or "default") in ("dynamic", "longrope"):
        return f"rope type {rope.get('rope_type') or rope.get('type')!r}"
    core = getattr(model, "model", None)
    if core is None or not hasattr(core, "layers") or not hasattr(core, "rotary_emb"):
        return "no model.layers / model.rotary_emb"
    return None


def cpu_paths(device) -> bool:
    """Whether the decoder takes its CPU paths (fused projections, matmul attention with an
    additive mask) on `device`; elsewhere sdpa and the model's separate projections. One
    function, so that tests can run the accelerator paths on a CPU."""
    return device.type == "cpu"


def rms_norm(x, weight, eps: float):
    """RMSNorm as transformers computes it (in float32, scaled back to the input dtype): [.., d]."""
    import torch

    dtype = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def rotate(x, cos, sin):
    """Rotary position embedding (Su et al. 2021) of x [B, heads, S, D] with cos/sin [B, 1, S, D]."""
    import torch

    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class KVDecoder:
    """Sampling loop of `HFBackend` for Llama-family models (see the module doc)."""

    def __init__(self, model: Any):
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"KVDecoder cannot run {reason}")
        cfg = model.config
        self.model = model
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.scale = self.head_dim ** -0.5
        self.fused: list | None = None      # `fuse_weights`' per-layer weights, while `run` decodes

    def fuse_weights(self) -> list:
        """Per layer (q|k|v weight, its bias, gate|up weight, its bias): the projections that
        read the same input concatenated, so each group is one matmul (and q, k one rotary op).
        On a CPU, where a decode step of a small model is bound by per-op overhead, this gave
        5-8% more tokens/s on the embedded default; `run` builds them from the model's current
        weights (a model trained in place stays current) and drops them when done. Not on an
        accelerator, where they would double the memory of the model's weights."""
        import torch

        def cat(mods):
            weight = torch.cat([m.weight for m in mods])
            if all(m.bias is None for m in mods):
                return weight, None
            return weight, torch.cat([m.bias if m.bias is not None else m.weight.new_zeros(m.weight.shape[0])
                                      for m in mods])

        out = []
        for layer in self.model.model.layers:
            att, mlp = layer.self_attn, layer.mlp
            out.append((*cat([att.q_proj, att.k_proj, att.v_proj]), *cat([mlp.gate_proj, mlp.up_proj])))
        return out

    # ------------------------------------------------------------------ the forward pass

    def cache_dtype(self, device):
        """float32 on a CPU (attention there runs fastest in fp32, even under a bf16 model: the
        matmuls take bf16, the attention fp32), else the model's dtype."""
        import torch

        weight = self.model.get_input_embeddings().weight
        return torch.float32 if cpu_paths(device) else weight.dtype

    def attend(self, q, keys, values, mask):
        """Attention of q [R, H, S, D] over keys/values [R, K, E, D] -> [R, H, S, D], in the
        cache's dtype. mask: from `attention_mask`, built once per forward for every layer.

        On a CPU as baddbmm(additive mask, q, k^T) + softmax + bmm over grouped heads (head h
        reads kv head h // (H/K), the order of transformers' `repeat_kv`), without copying K/V per
        group: there torch's sdpa with a mask is 1.3x slower in fp32 and 4x slower in bf16 at
        decode shapes (measured, torch 2.13), and a boolean mask would be applied anew per layer.
        On an accelerator, sdpa (fused kernels)."""
        import torch
        import torch.nn.functional as F

        q = q.to(keys.dtype)
        r, heads, s, d = q.shape
        groups, width = keys.shape[1], keys.shape[2]
        if not cpu_paths(q.device):
            if groups != heads:
                keys = keys.repeat_interleave(heads // groups, 1)
                values = values.repeat_interleave(heads // groups, 1)
            return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scale)
        rep = heads // groups
        scores = torch.baddbmm(mask, q.reshape(r * groups, rep * s, d),
                               keys.reshape(r * groups, width, d).transpose(1, 2), alpha=self.scale)
        probs = torch.softmax(scores, dim=-1)
        return torch.bmm(probs, values.reshape(r * groups, width, d)).view(r, heads, s, d)

    def attend_causal(self, q, k, v, dtype):
        """Causal attention among the S new tokens of right-padded rows (a prefill): q [R, H, S, D],
        k / v [R, K, S, D] -> [R, S, H, D], computed in `dtype` (the cache's). Right padding needs
        no mask: a real token never sees a later pad. On a CPU `rise.attention.causal_attention`
        (blocks of query rows, about half the score matrix never computed), elsewhere sdpa."""
        import torch.nn.functional as F

        from rise.attention import causal_attention

        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
        if cpu_paths(q.device):
            return causal_attention(q, k, v, self.scale)
        rep = q.shape[1] // k.shape[1]
        if rep > 1:
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale).transpose(1, 2)

    def attention_mask(self, allowed, dtype):
        """What `attend` takes for allowed [R, S, E] (True: query s may see column e): on a CPU an
        additive mask [R*K, rep*S, E] (0 / -inf) in `dtype`; elsewhere allowed as [R, 1, S, E]."""
        import torch

        if not cpu_paths(allowed.device):
            return allowed[:, None]
        r, s, width = allowed.shape
        groups, rep = self.kv_heads, self.heads // self.kv_heads
        bias = torch.zeros(r, 1, 1, s, width, dtype=dtype).masked_fill_(~allowed[:, None, None], float("-inf"))
        return bias.expand(r, groups, rep, s, width).reshape(r * groups, rep * s, width)

    def forward(self, ids, positions, valid, cache, start: int, last=None):
        """Logits of the last position of each row: [R, V].

        ids, positions: [R, S] tokens and their position ids; they fill cache columns
        start..start+S-1 of cache rows 0..R-1. valid: [R, C] bool, the columns each row may
        attend to (its own new columns included); None for a prefill of right-padded prompts
        into an empty cache (start 0): each new token then attends causally to the new tokens
        only (`attend_causal`), and no mask is needed. last: [R] the position of each row's
        last token (default S-1)."""
        import torch
        import torch.nn.functional as F

        core = self.model.model
        r, s = ids.shape
        end = start + s
        h = F.embedding(ids, core.embed_tokens.weight)
        cos, sin = core.rotary_emb(h, positions)
        cos, sin = cos[:, None], sin[:, None]
        mask = None
        if valid is not None:
            # query i (column start+i) sees the valid columns up to its own, and always itself: a
            # padding query with nothing to attend to would turn NaN and poison the cache.
            # Attention reads the cache's whole capacity (the columns past `end` are masked out):
            # a slice [:end] of it is strided, and a strided batched matmul ran 1.5-3x slower on
            # this CPU than the contiguous full width (bench: 10.1 vs 6.6 ms at 512 rows x 250 columns)
            width = cache[0][0].shape[2]
            causal = torch.ones(s, width, dtype=torch.bool, device=ids.device).tril_(start)
            own = torch.zeros(s, width, dtype=torch.bool, device=ids.device)
            own[:, start:end] = torch.eye(s, dtype=torch.bool, device=ids.device)
            mask = self.attention_mask((valid[:, None, :width] & causal) | own, cache[0][0].dtype)
        heads, kv, d = self.heads, self.kv_heads, self.head_dim
        for li, layer in enumerate(core.layers):
            att, mlp = layer.self_attn, layer.mlp
            x = rms_norm(h, layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon)
            if self.fused is not None:
                qkv_w, qkv_b, gate_up_w, gate_up_b = self.fused[li]
                qkv = F.linear(x, qkv_w, qkv_b).view(r, s, heads + 2 * kv, d).transpose(1, 2)
                qk = rotate(qkv[:, :heads + kv], cos, sin)
                q, k, v = qk[:, :heads], qk[:, heads:], qkv[:, heads + kv:]       # [R, heads or kv, S, D]
            else:
                q = rotate(F.linear(x, att.q_proj.weight, att.q_proj.bias).view(r, s, heads, d).transpose(1, 2),
                           cos, sin)
                k = rotate(F.linear(x, att.k_proj.weight, att.k_proj.bias).view(r, s, kv, d).transpose(1, 2),
                           cos, sin)
                v = F.linear(x, att.v_proj.weight, att.v_proj.bias).view(r, s, kv, d).transpose(1, 2)
            kc, vc = cache[li]
            kc[:r, :, start:end] = k
            vc[:r, :, start:end] = v
            if valid is None:
                a = self.attend_causal(q, k, v, kc.dtype).to(h.dtype)               # [R, S, H, D]
            else:
                a = self.attend(q, kc[:r], vc[:r], mask).to(h.dtype).transpose(1, 2)
            h = h + F.linear(a.reshape(r, s, -1), att.o_proj.weight, att.o_proj.bias)
            x = rms_norm(h, layer.post_attention_layernorm.weight,
                         layer.post_attention_layernorm.variance_epsilon)
            if self.fused is not None:
                gate, up = F.linear(x, gate_up_w, gate_up_b).chunk(2, dim=-1)
            else:
                gate = F.linear(x, mlp.gate_proj.weight, mlp.gate_proj.bias)
                up = F.linear(x, mlp.up_proj.weight, mlp.up_proj.bias)
            h = h + F.linear(F.silu(gate) * up, mlp.down_proj.weight, mlp.down_proj.bias)
        h = h[:, -1] if last is None else h[torch.arange(r, device=h.device), last]
        h = rms_norm(h, core.norm.weight, core.norm.variance_epsilon)
        head = self.model.get_output_embeddings()
        return F.linear(h, head.weight, getattr(head, "bias", None))

    # ------------------------------------------------------------------ the decode loop

    def run(self, prompts: list[list[int]], repeats: list[int], max_new: int, batch_rows: int,
            stop_ids: list[int], pad_id: int, sample: Callable, gen,
            on_done: Callable[[int], None] | None = None) -> list[list[int]]:
        """Token ids of sum(repeats) completions: repeats[i] rows for prompts[i], in order.

        prompts must come longest first. At most `batch_rows` rows decode at once; a finished
        row's slot takes the next waiting row.
        `sample(logits [R, V], gen) -> [R]` draws the tokens; `on_done(prompt index)` is called
        when the last row of a prompt has finished (progress bars)."""
        device = self.model.device
        self.fused = self.fuse_weights() if cpu_paths(device) else None
        try:
            return self._run(prompts, repeats, max_new, batch_rows, stop_ids, pad_id, sample, gen, on_done)
        finally:
            self.fused = None

    def _run(self, prompts, repeats, max_new, batch_rows, stop_ids, pad_id, sample, gen, on_done):
        import torch

        device = self.model.device
        dtype = self.cache_dtype(device)
        jobs = [(i, j) for i, n in enumerate(repeats) for j in range(n)]     # (prompt, sample)
        out: list[list[int]] = [[] for _ in jobs]
        left = list(repeats)
        stops = set(stop_ids)
        nxt = 0
        if max_new == 0:
            return out
        while nxt < len(jobs):
            width = len(prompts[jobs[nxt][0]])
            rows = min(batch_rows, len(jobs) - nxt)
            headroom = min(self.HEADROOM, max_new)
            capacity = width + headroom
            cache = [(torch.zeros(rows, self.kv_heads, capacity, self.head_dim, device=device, dtype=dtype),
                      torch.zeros(rows, self.kv_heads, capacity, self.head_dim, device=device, dtype=dtype))
                     for _ in self.model.model.layers]
            state = _Slots(rows, capacity, device)
            column = width                   # the column every row writes next

            def finish(slot: int, state=state) -> None:
                job = state.job[slot]
                state.job[slot] = -1
                state.valid[slot] = False
                left[jobs[job][0]] -= 1
                if on_done is not None and left[jobs[job][0]] == 0:
                    on_done(jobs[job][0])

            def record(tok_list, slots, state=state, finish=finish) -> None:
                # tok_list[slot]: the token just drawn for that slot (a list or a dict)
                for slot in slots:
                    t = tok_list[slot]
                    job = state.job[slot]
                    if t in stops:
                        finish(slot)
                        continue
                    out[job].append(t)
                    if len(out[job]) >= max_new:
                        finish(slot)

            nxt = self._admit(prompts, jobs, nxt, list(range(rows)), state, cache, column, pad_id,
                              sample, gen, record)
            while state.live():
                live = [s for s in range(rows) if state.job[s] >= 0]
                if nxt == len(jobs) and 2 * len(live) <= rows and rows > 1:
                    # nothing left to refill with: the stragglers decode on in a smaller batch
                    rows = self._shrink(state, cache, live)
                need = max(state.count[s] for s in range(rows) if state.job[s] >= 0)
                if column + 1 > capacity or capacity - need > 2 * headroom + need // 4:
                    column = self._refit(state, cache, column, headroom)
                    capacity = state.valid.shape[1]
                # every row's own new column is attendable (an idle row then never sees an
                # all-masked row, whose softmax would be NaN)
                state.valid[:, column] = True
                logits = self.forward(state.tok[:, None], state.position[:, None], state.valid,
                                      cache, column)
                state.position += 1
                for s in range(rows):
                    state.count[s] += 1
                column += 1
                state.tok = sample(logits, gen)
                record(state.tok.tolist(), [s for s in range(rows) if state.job[s] >= 0])
                free = [s for s in range(rows) if state.job[s] < 0]
                if nxt < len(jobs) and len(free) >= max(1, min(rows // 8, len(jobs) - nxt)):
                    nxt = self._admit(prompts, jobs, nxt, free, state, cache, column, pad_id,
                                      sample, gen, record)
        return out

    HEADROOM = 32            # free cache columns after a refit (fewer when max_new is smaller)

    @staticmethod
    def _shrink(state, cache, keep: list[int]) -> int:
        """Keep only the slots `keep` (batch and cache rows); returns the new row count."""
        import torch

        index = torch.tensor(keep, device=state.valid.device)
        for i, (kc, vc) in enumerate(cache):
            cache[i] = (kc.index_select(0, index), vc.index_select(0, index))
        state.job = [state.job[k] for k in keep]
        state.count = [state.count[k] for k in keep]
        state.tok, state.position = state.tok[index], state.position[index]
        state.valid = state.valid[index]
        return len(keep)

    def _refit(self, state, cache, column: int, headroom: int) -> int:
        """Move each row's attendable columns to the right end of [0, new), in order, and re-size
        the cache (and `state.valid`) to new + headroom columns; returns new, the write column.

        new is the longest live row's length. With refills, the columns of finished rows'
        predecessors pile up, and attention reads every column of the cache at every step, so
        one gather per layer every so often (the traffic of about one decode step) keeps the
        width near the longest live sequence. Rotary embeddings are already applied to the
        cached keys, so moving them changes nothing."""
        import torch

        valid = state.valid[:, :column]
        counts = valid.sum(1)                                                  # [B]
        new = max(int(counts.max()), 1)
        order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices   # valid first
        shift = new - counts                                                   # [B]
        j = torch.arange(new, device=valid.device)[None]
        src = order.gather(1, (j - shift[:, None]).clamp(min=0))               # [B, new]
        capacity = new + headroom
        for i, (kc, vc) in enumerate(cache):
            index = src[:, None, :, None].expand(kc.shape[0], kc.shape[1], new, kc.shape[3])
            moved = []
            for t in (kc, vc):
                fresh = t.new_zeros(t.shape[0], t.shape[1], capacity, t.shape[3])
                fresh[:, :, :new] = t[:, :, :column].gather(2, index)
                moved.append(fresh)
            cache[i] = tuple(moved)
        state.valid = torch.zeros(valid.shape[0], capacity, dtype=torch.bool, device=valid.device)
        state.valid[:, :new] = j >= shift[:, None]
        return new

    def _admit(self, prompts, jobs, nxt, free, state, cache, column, pad_id, sample, gen,
               record) -> int:
        """Prefill waiting rows into the `free` slots so that their prompts end at `column` - 1,
        and draw their first tokens. Each distinct prompt is prefilled once; its cache is copied
        to every slot that samples it. Returns the next waiting job."""
        import torch

        device = state.valid.device
        take = []
        while free and nxt < len(jobs) and len(prompts[jobs[nxt][0]]) <= column:
            take.append((free.pop(0), nxt))
            nxt += 1
        if not take:
            return nxt
        uniq: dict[int, int] = {}
        for _, job in take:
            uniq.setdefault(jobs[job][0], len(uniq))
        width = max(len(prompts[p]) for p in uniq)
        ids = torch.full((len(uniq), width), pad_id, dtype=torch.long)
        for p, u in uniq.items():
            ids[u, :len(prompts[p])] = torch.tensor(prompts[p], dtype=torch.long)
        lengths = torch.tensor([len(prompts[p]) for p in sorted(uniq, key=uniq.get)], device=device)
        ids = ids.to(device)
        positions = torch.arange(width, device=device).expand(len(uniq), width)
        # prefilled right-padded (causal attention without a mask) in a scratch cache as wide as
        # the prompts, then copied to the cache right-aligned at `column`, as if left-padded
        scratch = [(torch.zeros(len(uniq), kc.shape[1], width, kc.shape[3], device=device, dtype=kc.dtype),
                    torch.zeros(len(uniq), vc.shape[1], width, vc.shape[3], device=device, dtype=vc.dtype))
                   for kc, vc in cache]
        first = self.forward(ids, positions, None, scratch, 0, last=lengths - 1)   # [U, V]
        slots = torch.tensor([s for s, _ in take], device=device)
        src = torch.tensor([uniq[jobs[job][0]] for _, job in take], device=device)
        start = column - width
        shift = width - lengths[src]                                         # [n] left padding
        j = torch.arange(width, device=device)
        index = (j[None] - shift[:, None]).clamp_(min=0)                     # [n, width]
        for (kc, vc), (ks, vs) in zip(cache, scratch, strict=True):
            at = index[:, None, :, None].expand(len(take), ks.shape[1], width, ks.shape[3])
            kc[slots, :, start:column] = ks[src].gather(2, at)
            vc[slots, :, start:column] = vs[src].gather(2, at)
        state.valid[slots] = False
        state.valid[slots, start:column] = j[None] >= shift[:, None]
        state.position[slots] = lengths[src]
        for s, job in take:
            state.job[s] = job
            state.count[s] = len(prompts[jobs[job][0]])
        first_tok = sample(first[src], gen)                                  # [len(take)]
        state.tok[slots] = first_tok
        slot_of = [s for s, _ in take]
        record(dict(zip(slot_of, first_tok.tolist(), strict=True)), slot_of)
        return nxt


class _Slots:
    """Per-slot decode state of one batch: its job (-1: idle), next token, next position id and
    the cache columns it may attend to."""

    def __init__(self, rows: int, capacity: int, device):
        import torch

        self.job = [-1] * rows
        self.count = [0] * rows      # attendable columns of each slot's sequence
        self.tok = torch.zeros(rows, dtype=torch.long, device=device)
        self.position = torch.zeros(rows, dtype=torch.long, device=device)
        self.valid = torch.zeros(rows, capacity, dtype=torch.bool, device=device)

    def live(self) -> bool:
        return any(j >= 0 for j in self.job)
