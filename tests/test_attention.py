"""rise's training attention (rise.attention) and packed micro-batches (rise.packing) compute what
the model's own attention computes on padded micro-batches: per-example NLL and gradients, on
Llama- and Qwen2-shaped models with grouped-query attention and sliding windows."""
import copy

import pytest

torch = pytest.importorskip("torch")

from rise.attention import resolve_attention, segment_index, training_attention  # noqa: E402
from rise.errors import InputError  # noqa: E402
from rise.packing import micro_batch, resolve_packing  # noqa: E402
from rise.train import Encoded, TrainConfig, fit, nll_module  # noqa: E402


def _model(kind: str):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=128, attn_implementation="sdpa")
    if kind == "gemma3":  # Gemma 3 270M's layout: one kv head, a window on 5 of 6 layers, query_pre_attn_scalar
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig

        return Gemma3ForCausalLM(Gemma3TextConfig(**{**common, "num_hidden_layers": 6}, num_key_value_heads=1,
                                                  head_dim=16, sliding_window=4, query_pre_attn_scalar=12))
    if kind == "llama-gqa":
        return LlamaForCausalLM(LlamaConfig(num_key_value_heads=2, **common))
    if kind == "qwen2-sliding":  # a window shorter than the examples: the per-example mask matters
        return Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=4, use_sliding_window=True, sliding_window=5,
                                            max_window_layers=0, layer_types=["sliding_attention"] * 2, **common))
    return Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=4, **common))


def _examples(seed=0, n=5):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(6, 20, (1,), generator=g))
        ids = torch.randint(0, 97, (length,), generator=g).tolist()
        start = int(torch.randint(2, length - 2, (1,), generator=g))
        out.append(Encoded(ids, [j >= start for j in range(length)], weight=[12.18, 1.0, 0.082][i % 3]))
    return out


def _nll_and_grads(model, batch, packed, matmul=False):
    m = copy.deepcopy(model)
    net = nll_module(m, full_logits=False, packed=packed)
    tensors, w, real, trained = micro_batch(batch, pad_id=0, packed=packed, device=torch.device("cpu"))
    with training_attention(m, packed, matmul):
        nll = net(*tensors)
        (w * nll).sum().backward()
    assert m.config._attn_implementation == "sdpa"  # restored
    return nll.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}, real, trained


@pytest.mark.parametrize("kind", ["qwen2", "llama-gqa", "qwen2-sliding", "gemma3"])
@pytest.mark.parametrize("packed,matmul", [(False, True), (True, False), (True, True)])
def test_nll_and_gradients_equal_the_models_own_attention(kind, packed, matmul):
    """Reference: the padded micro-batch through the model's own sdpa attention with its padding
    mask. rise's matmul attention (no padding mask), packed rows with SDPA and packed rows with the
    matmul attention give the same NLL and gradients (fp32)."""
    torch.set_num_threads(1)
    model = _model(kind)
    batch = _examples()
    pad_nll, pad_grads, pad_real, pad_trained = _nll_and_grads(model, batch, packed=False)
    nll, grads, real, trained = _nll_and_grads(model, batch, packed, matmul)
    torch.testing.assert_close(nll, pad_nll, rtol=1e-5, atol=1e-6)
    for name, g in pad_grads.items():  # rounding relative to the tensor's scale (Gemma's reach 20)
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-5 * max(1.0, float(g.abs().max())), msg=name)
    assert (real, trained) == (pad_real, pad_trained) == (sum(len(e.input_ids) for e in batch),
                                                           sum(sum(e.trained[1:]) for e in batch))


@pytest.mark.parametrize("packed,matmul", [(True, False), (True, True), (False, True)])
def test_attention_does_not_cross_examples(packed, matmul):
    """Changing one example's tokens leaves every other example's NLL unchanged."""
    torch.set_num_threads(1)
    model = _model("llama-gqa")
    batch = _examples(n=3)
    other = copy.deepcopy(batch)
    other[0] = Encoded([(t + 1) % 97 for t in other[0].input_ids], other[0].trained, other[0].weight)
    a, _, _, _ = _nll_and_grads(model, batch, packed, matmul)
    b, _, _, _ = _nll_and_grads(model, other, packed, matmul)
    assert a[0] != b[0]
    torch.testing.assert_close(a[1:], b[1:], rtol=0, atol=1e-6)


def test_segment_index():
    idx, valid = segment_index(torch.tensor([0, 3, 4, 6]), torch.device("cpu"))
    assert idx.tolist() == [[0, 1, 2], [3, 0, 0], [4, 5, 0]]
    assert valid.tolist() == [[True, True, True], [True, False, False], [True, True, False]]


def test_fit_packed_and_matmul_equal_padded_and_restore_attention():
    torch.set_num_threads(1)
    from rise.embedded import build_model, build_tokenizer
    from rise.episodes import with_response

    texts = ["Tom has 3 apples and buys 4 more. How many?", "3 + 4 = 7\n#### 7", "Sue had 12 pens, lost 5.",
             "12 - 5 = 7\n#### 7", "Incorrect. Try again."]
    tok = build_tokenizer(texts * 5, vocab_size=300)
    model = build_model(tok, size="tiny", seed=0)
    c1 = [{"role": "user", "content": texts[0]}]
    c2 = [{"role": "user", "content": texts[2]}, {"role": "assistant", "content": "#### 8"},
          {"role": "user", "content": texts[4]}]
    exs = [{"messages": with_response(c, r), "weight": w}
           for c, r, w in [(c1, texts[1], 12.18), (c2, texts[3], 1.0), (c1, "#### 9", 0.082), (c2, "#### 7", 12.18)]]
    losses, tokens = {}, {}
    runs = {"model's own": ("off", "model"), "matmul": ("off", "rise"), "packed": ("on", "model"),
            "packed matmul": ("on", "rise")}
    for name, (packing, attention) in runs.items():
        m = copy.deepcopy(model)
        cfg = TrainConfig(batch_size=4, max_steps=3, micro_batch_tokens=64, lr=1e-3, packing=packing,
                          attention=attention)
        stats = fit(m, tok, exs, cfg, progress=False)
        losses[name] = stats["loss"]
        assert m.config._attn_implementation == model.config._attn_implementation  # restored
        tokens[name] = (stats["tokens"], stats["trained_tokens"])
    for name in runs:
        assert losses[name] == pytest.approx(losses["model's own"], rel=1e-4), name
        assert tokens[name] == tokens["model's own"]  # real tokens: the padded path counts no padding


def test_packing_settings():
    from types import SimpleNamespace

    model = _model("qwen2")                  # 64 wide: auto leaves it padded, `on` packs it
    assert resolve_packing(TrainConfig(), model) is False
    assert resolve_packing(TrainConfig(packing="on"), model) is True
    wide = SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa", hidden_size=576))
    assert resolve_packing(TrainConfig(), wide) is True
    assert resolve_packing(TrainConfig(packing="off"), wide) is False
    assert resolve_packing(TrainConfig(full_logits=True), wide) is False
    with pytest.raises(InputError, match="full_logits"):
        resolve_packing(TrainConfig(packing="on", full_logits=True), model)
    with pytest.raises(InputError, match="train.packing must be"):
        TrainConfig(packing="yes")

    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    assert resolve_packing(TrainConfig(), flash) is False
    with pytest.raises(InputError, match="cannot run packed"):
        resolve_packing(TrainConfig(packing="on"), flash)
    softcap = SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa", hidden_size=576,
                                                     attn_logit_softcapping=50.0))
    assert resolve_packing(TrainConfig(), softcap) is False


def test_attention_settings():
    from types import SimpleNamespace

    cpu, gpu = torch.device("cpu"), SimpleNamespace(type="cuda")
    model = _model("qwen2")
    cases = [("auto", cpu, True), ("auto", gpu, False), ("rise", gpu, True), ("model", cpu, False)]
    for setting, device, expected in cases:
        assert resolve_attention(setting, model, device) is expected, (setting, device)
    softcap = SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa", attn_logit_softcapping=50.0))
    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    for other in (softcap, flash):
        assert resolve_attention("auto", other, cpu) is False
        with pytest.raises(InputError, match="train.attention=rise"):
            resolve_attention("rise", other, cpu)
    with pytest.raises(InputError, match="train.attention must be"):
        TrainConfig(attention="fast")


def test_attention_sinks_are_refused():
    """A model whose attention passes sinks (gpt-oss's s_aux) is not silently computed without them."""
    from rise.attention import attention_forward

    q = torch.zeros(1, 2, 3, 4)
    module = SimpleModule()
    with pytest.raises(InputError, match="sinks"):
        attention_forward(module, q, q, q, s_aux=torch.zeros(2))


class SimpleModule:
    training = False


@pytest.mark.parametrize("block", [4, 128])
@pytest.mark.parametrize("heads,kv_heads,window", [(4, 4, None), (4, 2, None), (6, 2, 5), (4, 1, 300)])
def test_causal_attention_blocks_equal_full_attention(monkeypatch, block, heads, kv_heads, window):
    """`causal_attention`, computed block by block of query rows (several blocks here, with a
    sliding window that drops the first keys of later blocks), equals one softmax over the
    whole masked square (fp32), outputs and gradients."""
    import rise.attention as attention

    torch.set_num_threads(1)
    monkeypatch.setattr(attention, "BLOCK", block)
    g = torch.Generator().manual_seed(1)
    length = 37 if block == 4 else 300
    q = torch.randn(2, heads, length, 8, generator=g, requires_grad=True)
    k = torch.randn(2, kv_heads, length, 8, generator=g, requires_grad=True)
    v = torch.randn(2, kv_heads, length, 8, generator=g, requires_grad=True)
    grad = torch.randn(2, length, heads, 8, generator=g)
    allowed = attention.causal_allowed(length, window if window and window < length else None, torch.device("cpu"))
    rep = heads // kv_heads

    def full(q, k, v):
        kk, vv = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        scores = (q @ kk.transpose(-1, -2) * 0.3).masked_fill(~allowed, float("-inf"))
        return (torch.softmax(scores, -1) @ vv).transpose(1, 2)

    outs = {}
    for name, fn in (("full", full), ("blocks", lambda q, k, v: attention.causal_attention(q, k, v, 0.3, window))):
        out = fn(q, k, v)
        out.backward(grad)
        outs[name] = [out.detach()] + [t.grad.clone() for t in (q, k, v)]
        for t in (q, k, v):
            t.grad = None
    for a, b in zip(outs["blocks"], outs["full"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_long_rows_of_a_deep_model_fall_back_to_sdpa():
    from types import SimpleNamespace

    import rise.attention as attention

    shallow, deep = SimpleNamespace(config=SimpleNamespace(num_hidden_layers=2)), \
        SimpleNamespace(config=SimpleNamespace(num_hidden_layers=30))
    q = torch.zeros(8, 9, 1024, 1)
    assert attention._kernel(attention.MATMUL, shallow, q) is attention.causal_attention
    assert attention._kernel(attention.MATMUL, deep, q) is attention._sdpa
    with torch.no_grad():  # nothing is kept for a backward pass
        assert attention._kernel(attention.MATMUL, deep, q) is attention.causal_attention
    assert attention._kernel(attention.SDPA, shallow, q) is attention._sdpa
