"""Tests for rise.engines.hf: HFBackend's own decode loop against `model.generate`."""
from __future__ import annotations

import subprocess
import sys
import warnings
from itertools import pairwise

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from rise.engines.hf import (  # noqa: E402
    HFBackend,
    SamplingParams,
    render_prompt,
    stop_token_ids,
)

torch.set_num_threads(1)

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CONVS = [
    [{"role": "user", "content": "What is 2+3?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [
        {"role": "user", "content": "Compute 17*23 step by step, then box the answer."},
        {"role": "assistant", "content": "It is 391."},
        {"role": "user", "content": "The answer is incorrect. Please try again."},
    ],
    [{"role": "user", "content": "x"}],
]


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tk = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = TEMPLATE
    return tok


def make_model(vocab_size: int, seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.2,  # peaked, varied logits: greedy paths are not one repeated token
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(cfg).eval()
    return model


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    m = make_model(len(tok))
    m.generation_config.eos_token_id = tok.eos_token_id
    m.generation_config.pad_token_id = tok.pad_token_id
    return m


@pytest.fixture(params=["kv", "hf"])
def decoder(request):
    """Both decode loops of HFBackend: the KV decoder and transformers' own forward."""
    return request.param


def letter_ids(tok):
    return [tok.convert_tokens_to_ids(c) for c in "abcdefghijklmnopqrstuvwxyz"]


def reference_greedy(model, tok, conv, max_new, eos=None):
    """Token ids from plain unpadded model.generate(do_sample=False), end token excluded."""
    ids = tok(render_prompt(tok, conv), add_special_tokens=False, return_tensors="pt")["input_ids"]
    eos = eos if eos is not None else stop_token_ids(tok, model)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new,
            eos_token_id=eos,
            pad_token_id=tok.pad_token_id,
        )
    new = out[0, ids.shape[1] :].tolist()
    for i, t in enumerate(new):
        if t in eos:
            return new[:i]
    return new


def assert_greedy_as_generate(model, tok, convs, got, max_new, stops):
    """Each greedy completion in `got` equals plain model.generate's, and the rows ended at
    different lengths (so finishing early was exercised)."""
    lengths = set()
    for conv, (text,) in zip(convs, got, strict=True):
        ref = reference_greedy(model, tok, conv, max_new, eos=stops)
        lengths.add(len(ref))
        assert text == tok.decode(ref, skip_special_tokens=True)
    assert len(lengths) > 1


# ---------------------------------------------------------------- helpers


def test_import_is_cheap():
    code = ("import sys, rise.engines.hf, rise.engines; assert 'torch' not in sys.modules; "
            "assert 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_render_prompt_and_stop_ids(tok, model):
    text = render_prompt(tok, CONVS[0])
    assert text == "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    assert stop_token_ids(tok, model) == [tok.eos_token_id]
    m = make_model(len(tok))
    m.generation_config.eos_token_id = [7, tok.eos_token_id, 9]
    assert stop_token_ids(tok, m) == [tok.eos_token_id, 7, 9]


def test_sampling_params_validation():
    with pytest.raises(ValueError):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError):
        SamplingParams(top_p=0)
    assert SamplingParams(temperature=0).greedy


# ---------------------------------------------------------------- correctness


def test_greedy_equals_generate_and_padding(tok, model, decoder):
    """Left-padded batch of different-length prompts == one-by-one unpadded model.generate."""
    max_new = 24
    backend = HFBackend(model, tok, decoder=decoder, batch_size=8)
    got = backend.generate(CONVS, n=2, params=SamplingParams(temperature=0, max_new_tokens=max_new), seed=0)
    assert [len(g) for g in got] == [2] * len(CONVS)
    for conv, outs in zip(CONVS, got, strict=True):
        ref = tok.decode(reference_greedy(model, tok, conv, max_new), skip_special_tokens=True)
        assert outs == [ref, ref]
    # Not degenerate: the references differ between prompts.
    assert len({g[0] for g in got}) > 1


def test_greedy_equals_batched_generate(tok, model, decoder):
    """Same check against one batched, left-padded model.generate call."""
    max_new = 16
    texts = [render_prompt(tok, c) for c in CONVS]
    tok.padding_side = "left"
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        seqs = model.generate(**enc, do_sample=False, max_new_tokens=max_new, pad_token_id=tok.pad_token_id)
    refs = []
    for row in seqs[:, enc["input_ids"].shape[1] :].tolist():
        cut = row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
        refs.append(tok.decode(row[:cut], skip_special_tokens=True))
    greedy = SamplingParams(temperature=0, max_new_tokens=max_new)
    got = HFBackend(model, tok, decoder=decoder).generate(CONVS, 1, greedy, 0)
    assert [g[0] for g in got] == refs


def test_stops_at_end_token(tok, model, decoder):
    """Greedy with a stop token taken from the middle of an unstopped run: output is the prefix."""
    conv = CONVS[2]
    full = reference_greedy(model, tok, conv, 20, eos=[-1])
    stop = full[5]
    cut = full.index(stop)
    m = make_model(len(tok))
    m.generation_config.eos_token_id = stop
    got = HFBackend(m, tok, decoder=decoder).generate([conv], 3, SamplingParams(temperature=0, max_new_tokens=20), 0)
    assert got == [[tok.decode(full[:cut], skip_special_tokens=True)] * 3]
    assert tok.decode([stop]) not in got[0][0] or cut == 0


def test_rows_finish_at_different_times(tok, monkeypatch, decoder):
    """Many stop tokens (all lowercase letters): rows end at different steps and are dropped from
    the batch; greedy outputs still equal model.generate one by one, and no output holds a letter."""
    selected = []
    original = transformers.DynamicCache.batch_select_indices

    def spy(self, indices):
        selected.append(len(indices))
        return original(self, indices)

    monkeypatch.setattr(transformers.DynamicCache, "batch_select_indices", spy)
    m = make_model(len(tok), seed=1)
    stops = [tok.eos_token_id] + letter_ids(tok)
    m.generation_config.eos_token_id = stops
    convs = [[{"role": "user", "content": f"question {i} " + "z" * (3 * i)}] for i in range(8)]
    greedy = SamplingParams(temperature=0, max_new_tokens=30)
    got = HFBackend(m, tok, decoder=decoder, batch_size=8).generate(convs, 1, greedy, 0)
    assert_greedy_as_generate(m, tok, convs, got, 30, stops)
    lazy = HFBackend(m, tok, decoder=decoder, batch_size=8)
    lazy.sync_every = 3  # the accelerator setting: finished rows noticed every 3 steps
    assert lazy.generate(convs, 1, SamplingParams(temperature=0, max_new_tokens=30), 0) == got

    sampled = HFBackend(m, tok, decoder=decoder, batch_size=16).generate(convs, 4, SamplingParams(max_new_tokens=30), 3)
    assert all(len(s) == 4 for s in sampled)
    flat = [t for s in sampled for t in s]
    assert not any(c in "abcdefghijklmnopqrstuvwxyz" for t in flat for c in t)
    assert len({len(t) for t in flat}) > 1  # rows finished at different times
    if decoder == "hf":
        assert any(b < a for a, b in pairwise(selected))  # the cache shrank


def test_n_samples_in_order(tok, model, decoder):
    """Near-zero temperature samples equal each conversation's own greedy output, in order,
    through the expanded cache, with duplicate conversations and batch_size < n (chunking)."""
    convs = [CONVS[2], CONVS[0], CONVS[2], CONVS[3]]
    params = SamplingParams(temperature=1e-4, max_new_tokens=12)
    for bs in (64, 3):
        got = HFBackend(model, tok, decoder=decoder, batch_size=bs).generate(convs, 5, params, seed=1)
        assert [len(g) for g in got] == [5] * len(convs)
        for conv, outs in zip(convs, got, strict=True):
            ref = tok.decode(reference_greedy(model, tok, conv, 12), skip_special_tokens=True)
            assert outs == [ref] * 5


def test_tiny_top_p_is_greedy(tok, model, decoder):
    params = SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=12)
    got = HFBackend(model, tok, decoder=decoder).generate(CONVS, 3, params, seed=5)
    greedy = HFBackend(model, tok, decoder=decoder).generate(
        CONVS, 3, SamplingParams(temperature=0, max_new_tokens=12), 0)
    assert got == greedy


def test_seed_determinism(tok, model, decoder):
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=16)
    backend = HFBackend(model, tok, decoder=decoder, batch_size=6)
    a = backend.generate(CONVS, 3, params, seed=11)
    b = backend.generate(CONVS, 3, params, seed=11)
    c = backend.generate(CONVS, 3, params, seed=12)
    assert a == b
    assert a != c
    # samples of one prompt differ from each other
    assert len(set(a[2])) > 1
    # the global RNG is not used
    torch.manual_seed(0)
    x = torch.rand(1)
    torch.manual_seed(0)
    backend.generate(CONVS[:1], 2, params, seed=1)
    assert torch.equal(torch.rand(1), x)


def test_use_generate_fallback(tok, model):
    max_new = 12
    fb = HFBackend(model, tok, batch_size=4, use_generate=True)
    greedy = fb.generate(CONVS, 2, SamplingParams(temperature=0, max_new_tokens=max_new), 0)
    own = HFBackend(model, tok).generate(CONVS, 2, SamplingParams(temperature=0, max_new_tokens=max_new), 0)
    assert greedy == own
    params = SamplingParams(max_new_tokens=max_new)
    s1 = fb.generate(CONVS, 3, params, seed=4)
    assert [len(s) for s in s1] == [3] * len(CONVS)
    assert s1 == fb.generate(CONVS, 3, params, seed=4)


def test_edge_cases(tok, model, decoder):
    backend = HFBackend(model, tok, decoder=decoder, progress="test")
    assert backend.generate([], 3, SamplingParams(), 0) == []
    assert backend.generate(CONVS[:2], 2, SamplingParams(max_new_tokens=0), 0) == [["", ""], ["", ""]]
    with pytest.raises(ValueError):
        backend.generate(CONVS, 0, SamplingParams(), 0)
    # training mode is restored after generation
    model.train()
    try:
        backend.generate(CONVS[:1], 1, SamplingParams(max_new_tokens=2), 0)
        assert model.training
    finally:
        model.eval()


def test_max_prompt_tokens_keeps_the_end(tok, model, decoder):
    backend = HFBackend(model, tok, decoder=decoder, max_prompt_tokens=20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend.generate(CONVS[2:3], 1, SamplingParams(temperature=0, max_new_tokens=4), 0)
    assert backend.truncated_prompts == 1
    assert any("cut to its last 20" in str(w.message) for w in caught)


# ---------------------------------------------------------------- the KV decoder


def make_family_model(kind: str, vocab_size: int, seed: int = 0):
    """Tiny random Llama / Qwen2 (q/k/v biases) / Mistral models, grouped-query attention."""
    torch.manual_seed(seed)
    shape = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                 initializer_range=0.2, tie_word_embeddings=kind == "llama")
    if kind == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**shape, rope_theta=500.0)).eval()
    if kind == "mistral":
        return transformers.MistralForCausalLM(transformers.MistralConfig(**shape, sliding_window=None)).eval()
    return transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**shape)).eval()


def accelerator_paths(monkeypatch):
    """Make the KV decoder take its accelerator paths (sdpa with a boolean mask, the model's
    separate projections, a cache in the model's dtype) on this CPU."""
    from rise.engines import kv_decode

    monkeypatch.setattr(kv_decode, "cpu_paths", lambda device: False)


PATHS = [(True, "cpu"), (False, "cpu"), (False, "accelerator")]   # (fused, paths): as `run` picks them


def decoder_under_test(tok, monkeypatch, kind, dtype, fused, paths):
    """(model, KVDecoder, tolerance, cache dtype) for one case of PATHS: the tolerance is bf16's
    precision for a bf16 model; the cache is fp32 on the CPU paths, else the model's dtype."""
    from rise.engines.kv_decode import KVDecoder

    if paths == "accelerator":
        accelerator_paths(monkeypatch)
    m = make_family_model(kind, len(tok)).to(getattr(torch, dtype))
    dec = KVDecoder(m)
    dec.fused = dec.fuse_weights() if fused else None
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=0.05, atol=0.1)
    return m, dec, tol, dec.cache_dtype(torch.device("cpu"))


@pytest.mark.parametrize("fused, paths", PATHS)
@pytest.mark.parametrize("kind, dtype", [("llama", "float32"), ("qwen2", "float32"),
                                         ("mistral", "float32"), ("llama", "bfloat16")])
def test_kv_decoder_logits_equal_the_models_own(tok, monkeypatch, kind, dtype, fused, paths):
    """Prefill of a left-padded batch, then three decode steps: the KV decoder's last-position
    logits equal the model's own forward on the same (unpadded) sequences (bf16: to bf16's
    precision, the generation sanity check of the CPU bf16 path), with the projections fused
    (as `run` decodes on a CPU) and separate, and on the accelerator paths."""
    m, dec, tol, cd = decoder_under_test(tok, monkeypatch, kind, dtype, fused, paths)
    prompts = [[5, 9, 11, 40, 2, 7], [33, 4, 8]]
    width, steps = 6, 3
    cache = [(torch.zeros(2, 2, width + steps, 8, dtype=cd), torch.zeros(2, 2, width + steps, 8, dtype=cd))
             for _ in range(2)]
    ids = torch.tensor([prompts[0], [0, 0, 0] + prompts[1]])
    valid = torch.zeros(2, width + steps, dtype=torch.bool)
    valid[0, :width], valid[1, 3:width] = True, True
    pos = (valid[:, :width].long().cumsum(-1) - 1).clamp(min=0)
    seqs = [list(p) for p in prompts]
    with torch.no_grad():
        logits = dec.forward(ids, pos, valid, cache, 0)
        for step in range(steps + 1):
            for row, seq in enumerate(seqs):
                ref = m(input_ids=torch.tensor([seq])).logits[0, -1]
                torch.testing.assert_close(logits[row], ref, **tol)
            if step == steps:
                break
            tok_next = logits.argmax(-1)
            for row, seq in enumerate(seqs):
                seq.append(int(tok_next[row]))
            column = width + step
            valid[:, column] = True
            logits = dec.forward(tok_next[:, None], torch.tensor([[len(seqs[0]) - 1], [len(seqs[1]) - 1]]),
                                 valid, cache, column)


@pytest.mark.parametrize("fused, paths", PATHS)
@pytest.mark.parametrize("kind, dtype", [("llama", "float32"), ("qwen2", "float32"), ("llama", "bfloat16")])
def test_kv_decoder_prefill_of_right_padded_prompts(tok, monkeypatch, kind, dtype, fused, paths):
    """The prefill path (valid=None: right-padded prompts, causal attention without a mask, the
    logits of each row's last real token) equals the model's own forward on each prompt alone,
    and writes the prompts' keys and values where the masked path writes them."""
    m, dec, tol, cd = decoder_under_test(tok, monkeypatch, kind, dtype, fused, paths)
    prompts = [[5, 9, 11, 40, 2, 7, 13], [33, 4, 8], [6, 6]]
    width = 7
    ids = torch.zeros(3, width, dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, :len(p)] = torch.tensor(p)
    lengths = torch.tensor([len(p) for p in prompts])
    cache = [(torch.zeros(3, 2, width, 8, dtype=cd), torch.zeros(3, 2, width, 8, dtype=cd)) for _ in range(2)]
    with torch.no_grad():
        logits = dec.forward(ids, torch.arange(width).expand(3, width), None, cache, 0, last=lengths - 1)
        for row, p in enumerate(prompts):
            torch.testing.assert_close(logits[row], m(input_ids=torch.tensor([p])).logits[0, -1], **tol)
            one = [(torch.zeros(1, 2, len(p), 8, dtype=cd), torch.zeros(1, 2, len(p), 8, dtype=cd)) for _ in range(2)]
            dec.forward(torch.tensor([p]), torch.arange(len(p))[None], torch.ones(1, len(p), dtype=torch.bool), one, 0)
            for (k, v), (k1, v1) in zip(cache, one, strict=True):
                torch.testing.assert_close(k[row, :, :len(p)], k1[0], **tol)
                torch.testing.assert_close(v[row, :, :len(p)], v1[0], **tol)


@pytest.mark.parametrize("headroom, paths", [(32, "cpu"), (3, "cpu"), (3, "accelerator")])
def test_kv_decoder_refills_finished_slots(tok, monkeypatch, headroom, paths):
    """Few slots, many prompts of different lengths, rows ending at different steps: finished
    slots take new rows mid-batch (more admissions than batches), and greedy outputs still equal
    model.generate one by one. With a headroom far below max_new_tokens the cache is compacted
    and grown many times on the way."""
    from rise.engines import kv_decode

    admissions, refits = [], []
    original, original_refit = kv_decode.KVDecoder._admit, kv_decode.KVDecoder._refit

    def spy(self, prompts, jobs, nxt, free, *a, **kw):
        admissions.append(len(free))
        return original(self, prompts, jobs, nxt, free, *a, **kw)

    def spy_refit(self, *a, **kw):
        refits.append(1)
        return original_refit(self, *a, **kw)

    monkeypatch.setattr(kv_decode.KVDecoder, "_admit", spy)
    monkeypatch.setattr(kv_decode.KVDecoder, "_refit", spy_refit)
    monkeypatch.setattr(kv_decode.KVDecoder, "HEADROOM", headroom)
    if paths == "accelerator":
        accelerator_paths(monkeypatch)
    m = make_family_model("llama", len(tok), seed=3)
    stops = [tok.eos_token_id] + letter_ids(tok)[:13]
    m.generation_config.eos_token_id = stops
    convs = [[{"role": "user", "content": f"q{i} " + "y" * (i % 5)}] for i in range(12)]
    backend = HFBackend(m, tok, batch_size=3, decoder="kv")
    got = backend.generate(convs, 1, SamplingParams(temperature=0, max_new_tokens=20), 0)
    assert_greedy_as_generate(m, tok, convs, got, 20, stops)
    batches = sum(1 for _ in range(0, 12, 3))
    assert len(admissions) > batches
    if headroom < 20:
        assert len(refits) >= 12 * 5 // headroom // 3   # rows outgrow a 3-column headroom often
    # sampled: same seed, same outputs; n rows per prompt share its prefill
    params = SamplingParams(max_new_tokens=20)
    a = backend.generate(convs, 3, params, 5)
    assert a == backend.generate(convs, 3, params, 5)
    assert all(len(x) == 3 for x in a)


def test_decoder_choice(tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2)).eval()
    assert HFBackend(gpt2, tok).decoder == "hf"                       # auto falls back
    assert HFBackend(make_family_model("qwen2", len(tok)), tok).decoder == "kv"
    with pytest.raises(ValueError, match="decoder 'kv' cannot run"):
        HFBackend(gpt2, tok, decoder="kv")
    with pytest.raises(ValueError, match="decoder must be one of"):
        HFBackend(gpt2, tok, decoder="fast")
    b = HFBackend(gpt2, tok)
    with b:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        b.generate(CONVS[:1], 1, SamplingParams(max_new_tokens=2), 0)
