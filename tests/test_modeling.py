"""rise.modeling: loading and saving models (tiny models saved to a temporary folder)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rise.embedded import build_model, build_tokenizer  # noqa: E402
from rise.modeling import (  # noqa: E402
    is_plausible_hub_id,
    load_model,
    read_chat_template,
    resolve_device,
    resolve_dtype,
    save_model,
)

torch.set_num_threads(1)

TEXTS = ["Tom has 12 apples. He buys 35 more. How many apples does he have?",
         "12 + 35 = 47\n#### 47", "Great job! Next question: Ann has 3 pens."]


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    tok = build_tokenizer(TEXTS, vocab_size=300)
    model = build_model(tok, "tiny", seed=0)
    out = tmp_path_factory.mktemp("tiny")
    save_model(model, tok, out)
    return out


def test_save_writes_safetensors_and_template(saved_dir):
    names = {p.name for p in saved_dir.iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not any(n.endswith(".bin") for n in names)


def test_load_saved_dir(saved_dir):
    model, tok = load_model(saved_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert not model.training
    assert next(model.parameters()).dtype == resolve_dtype("auto", "cpu")
    assert next(model.parameters()).device.type == "cpu"
    assert tok.pad_token == "<|pad|>" and tok.eos_token == "<|end|>"
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == "<|user|>\nhi<|end|>\n<|assistant|>\n"
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok))


def test_plain_auto_tokenizer_on_model_dir_agrees(saved_dir):
    """transformers loads a qwen2 directory's tokenizer as Qwen2Tokenizer; ids must not change."""
    from transformers import AutoTokenizer

    _, ours = load_model(saved_dir)
    auto = AutoTokenizer.from_pretrained(saved_dir)
    assert len(auto) == len(ours)
    msgs = [{"role": "user", "content": "Tom has  12345 apples (x+1)!"},
            {"role": "assistant", "content": "it's 3.5\n\n#### 47  "}]
    assert auto.apply_chat_template(msgs, tokenize=False) == ours.apply_chat_template(msgs, tokenize=False)
    text = ours.apply_chat_template(msgs, tokenize=False)
    assert auto(text)["input_ids"] == ours(text)["input_ids"]
    assert auto.eos_token_id == ours.eos_token_id and auto.pad_token_id == ours.pad_token_id


def test_load_dtype_and_device_options(saved_dir):
    model, _ = load_model(saved_dir, dtype="bfloat16", device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16


def _one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


def test_missing_local_path_is_one_line(tmp_path):
    missing = str(tmp_path / "no" / "such" / "model")
    with pytest.raises(ValueError) as e:
        load_model(missing)
    _one_line_error(e, missing, "does not exist")
    with pytest.raises(ValueError) as e:
        load_model("./relative/missing-model")
    _one_line_error(e, "./relative/missing-model")


def test_file_instead_of_dir(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_text("x")
    with pytest.raises(ValueError) as e:
        load_model(f)
    _one_line_error(e, str(f))


def test_no_chat_template_is_one_line_error_and_option_fixes_it(saved_dir, tmp_path):
    model, tok = load_model(saved_dir)
    tok.chat_template = None
    bare = tmp_path / "bare"
    save_model(model, tok, bare)
    for f in bare.glob("chat_template*"):
        f.unlink()
    with pytest.raises(ValueError) as e:
        load_model(bare)
    _one_line_error(e, str(bare), "chat_template")

    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    _, tok2 = load_model(bare, chat_template=template)
    assert tok2.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False) == "user: x\n"
    path = tmp_path / "t.jinja"
    path.write_text(template)
    _, tok3 = load_model(bare, chat_template=str(path))
    assert tok3.chat_template == template
    with pytest.raises(ValueError) as e:
        read_chat_template(str(tmp_path / "missing.jinja"))
    _one_line_error(e, "missing.jinja")


def test_pad_token_defaults_to_eos(saved_dir, tmp_path):
    model, tok = load_model(saved_dir)
    tok.pad_token = None
    d = tmp_path / "nopad"
    save_model(model, tok, d)
    _, tok2 = load_model(d)
    assert tok2.pad_token == tok2.eos_token == "<|end|>"


@pytest.mark.parametrize("fast_bf16, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_follows_the_cpus_bf16_support(monkeypatch, fast_bf16, expected):
    import rise.modeling
    from rise.train import resolve_mixed_precision

    monkeypatch.setattr(rise.modeling, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert resolve_dtype("auto", "cpu") == getattr(torch, expected)
    assert resolve_dtype("float32", "cpu") == torch.float32          # an explicit choice wins
    assert resolve_mixed_precision("auto", cpu=True) == ("bf16" if fast_bf16 else "no")
    assert resolve_mixed_precision("no", cpu=True) == "no"


def test_cpu_flags_are_read():
    from rise.modeling import cpu_has_fast_bf16

    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo")
    assert cpu_has_fast_bf16() == any(f in flags for f in ("amx_bf16", "avx512_bf16"))


def test_resolve_dtype_and_device():
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert resolve_dtype(torch.float16, "cpu") == torch.float16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float8", "cpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")


def test_hub_id_plausibility():
    for name in ("gpt2", "Qwen/Qwen2.5-0.5B-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        assert is_plausible_hub_id(name)
    for name in ("./model", "/abs/model", "~/m", "a/b/c", "../up", "runs/x/checkpoint", ""):
        assert not is_plausible_hub_id(name)
