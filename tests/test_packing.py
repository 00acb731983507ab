"""Packed training micro-batches (rise.packing) equal the padded ones: per-example NLL and
gradients, on Llama- and Qwen2-shaped models with grouped-query attention and sliding windows."""
import copy

import pytest

torch = pytest.importorskip("torch")

from rise.errors import InputError  # noqa: E402
from rise.packing import micro_batch, packed_model, resolve_packing, segment_index  # noqa: E402
from rise.train import Encoded, TrainConfig, fit, nll_module  # noqa: E402


def _model(kind: str):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=128, attn_implementation="sdpa")
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


def _nll_and_grads(model, batch, packed):
    m = copy.deepcopy(model)
    net = nll_module(m, full_logits=False, packed=packed)
    tensors, w, real, trained = micro_batch(batch, pad_id=0, packed=packed, device=torch.device("cpu"))
    with packed_model(m, packed):
        nll = net(*tensors)
        (w * nll).sum().backward()
    return nll.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}, real, trained


@pytest.mark.parametrize("kind", ["qwen2", "llama-gqa", "qwen2-sliding"])
def test_packed_nll_and_gradients_equal_padded(kind):
    torch.set_num_threads(1)
    model = _model(kind)
    batch = _examples()
    pad_nll, pad_grads, pad_real, pad_trained = _nll_and_grads(model, batch, packed=False)
    pk_nll, pk_grads, pk_real, pk_trained = _nll_and_grads(model, batch, packed=True)
    torch.testing.assert_close(pk_nll, pad_nll, rtol=1e-5, atol=1e-6)
    for name, g in pad_grads.items():
        torch.testing.assert_close(pk_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)
    assert (pk_real, pk_trained) == (pad_real, pad_trained) == (sum(len(e.input_ids) for e in batch),
                                                                sum(sum(e.trained[1:]) for e in batch))


def test_packed_attention_does_not_cross_examples():
    """Changing one example's tokens leaves every other example's NLL unchanged."""
    torch.set_num_threads(1)
    model = _model("llama-gqa")
    batch = _examples(n=3)
    other = copy.deepcopy(batch)
    other[0] = Encoded([(t + 1) % 97 for t in other[0].input_ids], other[0].trained, other[0].weight)
    a, _, _, _ = _nll_and_grads(model, batch, packed=True)
    b, _, _, _ = _nll_and_grads(model, other, packed=True)
    assert a[0] != b[0]
    torch.testing.assert_close(a[1:], b[1:], rtol=0, atol=1e-6)


def test_segment_index():
    idx, valid = segment_index(torch.tensor([0, 3, 4, 6]), torch.device("cpu"))
    assert idx.tolist() == [[0, 1, 2], [3, 0, 0], [4, 5, 0]]
    assert valid.tolist() == [[True, True, True], [True, False, False], [True, True, False]]


def test_fit_packed_equals_padded_and_restores_attention():
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
    for packing in ("off", "on"):
        m = copy.deepcopy(model)
        cfg = TrainConfig(batch_size=4, max_steps=3, micro_batch_tokens=64, lr=1e-3, packing=packing)
        stats = fit(m, tok, exs, cfg, progress=False)
        losses[packing] = stats["loss"]
        assert m.config._attn_implementation == model.config._attn_implementation  # restored
        tokens[packing] = (stats["tokens"], stats["trained_tokens"])
    assert losses["on"] == pytest.approx(losses["off"], rel=1e-4)
    assert tokens["on"] == tokens["off"]  # real tokens: the padded path counts no padding either


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
