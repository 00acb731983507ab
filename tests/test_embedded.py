"""rise.embedded (tokenizer, model config, pretraining corpus) and rise.pretrain (tiny runs)."""
from __future__ import annotations

import json
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rise.embedded import (  # noqa: E402
    CHAT_TEMPLATE,
    FOLLOW_UPS,
    SPECIAL_TOKENS,
    build_model,
    build_tokenizer,
    contains_feedback,
    corpus_texts,
    count_parameters,
    model_config,
    pretraining_conversations,
)
from rise.prompts import get_preset  # noqa: E402
from rise.tasks.base import Problem  # noqa: E402

torch.set_num_threads(1)

TEXTS = [
    "Tom has 12 apples. He buys 35 more. How many apples does he have?",
    "Tom has 12 + 35 = 47 apples.\n#### 47",
    "Ann has 3 boxes of 24 pens. How many pens does she have?",
    "3 * 24 = 72\n#### 72",
] * 3


def _problems(n):
    out = []
    for i in range(n):
        a, b = 10 + i, 3 + 2 * i
        out.append(Problem(id=f"p{i}", question=f"Sam has {a} cards and gets {b} more. How many cards?",
                           solution=f"{a} + {b} = {a + b}\n#### {a + b}", answer=str(a + b)))
    return out


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(TEXTS, vocab_size=320)


# -- tokenizer -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "Tom has 12 apples. He buys 35 more.\n#### 47",
    "  leading spaces, tabs\tand\n\nblank lines  ",
    "Ünïcödé — 😀 and $3.50 (x^2 + 1) / 7 = 0.25",
    "words never seen: zyxw quokka",
])
def test_round_trip(tok, text):
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_special_tokens_are_single_ids(tok):
    ids = [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert ids == [0, 1, 2, 3, 4]
    for t, i in zip(SPECIAL_TOKENS, ids, strict=True):
        assert tok(t, add_special_tokens=False)["input_ids"] == [i]
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"
    assert tok.eos_token_id == 3 and tok.pad_token_id == 4


def test_digits_split_individually(tok):
    pieces = tok.convert_ids_to_tokens(tok("x 12345 and 47", add_special_tokens=False)["input_ids"])
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert digits == list("1234547")


def test_chat_template_rendering(tok):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == (
        "<|system|>\nS<|end|>\n<|user|>\nQ<|end|>\n<|assistant|>\nA<|end|>\n<|user|>\nQ2<|end|>\n<|assistant|>\n")
    assert tok.apply_chat_template(msgs[:3], tokenize=False) == (
        "<|system|>\nS<|end|>\n<|user|>\nQ<|end|>\n<|assistant|>\nA<|end|>\n")


def test_save_reload_with_auto_tokenizer(tok, tmp_path):
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    msgs = [{"role": "user", "content": "Tom has 12 apples."}, {"role": "assistant", "content": "#### 12"}]
    assert again.chat_template == CHAT_TEMPLATE
    assert again.apply_chat_template(msgs, tokenize=False) == tok.apply_chat_template(msgs, tokenize=False)
    text = "Tom has 123 apples.\n#### 47"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.eos_token_id == tok.eos_token_id and again.pad_token_id == tok.pad_token_id
    assert again.decode(again(text)["input_ids"]) == text


def test_tokenizer_is_deterministic():
    a = build_tokenizer(TEXTS, vocab_size=320)
    b = build_tokenizer(list(reversed(TEXTS)), vocab_size=320)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()


def test_template_renders_prefixes_for_training(tok):
    from rise.train import tokenize_example

    convs = pretraining_conversations(_problems(9), random.Random(1), multi_turn_fraction=1.0)
    ids, mask = tokenize_example(tok, convs[0], train_on="all_assistant")
    full = tok.apply_chat_template(convs[0], tokenize=False)
    assert tok.decode(ids) == full
    trained = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert trained == "".join(m["content"] + "<|end|>\n" for m in convs[0] if m["role"] == "assistant")


# -- model ---------------------------------------------------------------------------------------
def test_model_config_tiny_builds_qwen2(tok):
    from transformers import Qwen2ForCausalLM

    model = build_model(tok, "tiny", seed=0)
    assert isinstance(model, Qwen2ForCausalLM)
    n = count_parameters(model)
    assert 50_000 <= n <= 150_000, n
    assert model.config.tie_word_embeddings and model.config.vocab_size == len(tok)
    assert model.config.eos_token_id == tok.eos_token_id and model.config.pad_token_id == tok.pad_token_id
    assert torch.equal(build_model(tok, "tiny", seed=0).model.embed_tokens.weight, model.model.embed_tokens.weight)


def test_model_config_default_size(tok):
    from transformers import Qwen2ForCausalLM

    class Vocab1024:  # only len(), eos and pad ids are read
        eos_token_id, pad_token_id = 3, 4

        def __len__(self):
            return 1024

    cfg = model_config(Vocab1024(), "default")
    assert cfg.model_type == "qwen2" and cfg.max_position_embeddings == 1024
    sizes = {}
    for name in ("default", "medium", "large"):
        with torch.device("meta"):
            sizes[name] = count_parameters(Qwen2ForCausalLM(model_config(Vocab1024(), name)))
    assert 1_000_000 <= sizes["default"] <= 1_500_000, sizes
    assert 2_000_000 <= sizes["medium"] <= 3_000_000, sizes
    assert 20_000_000 <= sizes["large"] <= 40_000_000, sizes
    with pytest.raises(ValueError, match="unknown model size"):
        model_config(tok, "huge")


# -- corpus --------------------------------------------------------------------------------------
def test_pretraining_conversations_shape():
    probs = _problems(60)
    convs = pretraining_conversations(probs, random.Random(0), multi_turn_fraction=0.5)
    assert convs == pretraining_conversations(probs, random.Random(0), multi_turn_fraction=0.5)
    by_q = {p.question: p for p in probs}
    used = []
    n_multi = 0
    for conv in convs:
        roles = [m["role"] for m in conv]
        assert roles == ["user", "assistant"] * (len(conv) // 2)
        assert 1 <= len(conv) // 2 <= 3
        n_multi += len(conv) > 2
        qs = []
        for k in range(0, len(conv), 2):
            user, sol = conv[k]["content"], conv[k + 1]["content"]
            q = next(q for q in by_q if user.endswith(q))
            if k == 0:
                assert user == get_preset("default").question.format(question=q)
            else:
                assert any(user == f.format(q=q) for f in FOLLOW_UPS)
            assert sol == by_q[q].solution
            qs.append(q)
        assert len(set(qs)) == len(qs)  # different questions within one chat
        used += qs
    assert sorted(used) == sorted(by_q)  # every problem exactly once
    assert 5 <= n_multi <= len(convs) - 5


def test_corpus_never_contains_feedback():
    convs = pretraining_conversations(_problems(200), random.Random(3), multi_turn_fraction=1.0)
    assert not contains_feedback(convs)
    text = "\n".join(corpus_texts(convs)).lower()
    preset = get_preset("default")
    for mode, line in preset.feedback.items():
        assert line.split("{")[0].strip().lower() not in text, mode
    assert "incorrect" not in text and "try again" not in text


# -- pretrain ------------------------------------------------------------------------------------
def _tiny_cfg(out_dir, **kw):
    from rise.pretrain import PretrainConfig

    base = dict(size="tiny", n_problems=48, vocab_size=320, max_steps=3, batch_size=8, lr=1e-3,
                eval_problems=4, eval_max_new_tokens=8, eval_batch_size=8, max_length=512,
                seed=0, out_dir=str(out_dir) if out_dir else None)
    base.update(kw)
    return PretrainConfig(**base)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_tiny_pretrain_runs_and_is_deterministic(tmp_path):
    pytest.importorskip("rise.tasks")
    from rise.modeling import load_model
    from rise.pretrain import pretrain

    a = pretrain(_tiny_cfg(tmp_path / "a"), progress=False, command="test")
    b = pretrain(_tiny_cfg(tmp_path / "b", eval_problems=0), progress=False, command="test")
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    card = (a / "model_card.md").read_text()
    assert "rise.train.fit" in card and "Measured" in card and "turn" in card
    stats = json.loads((a / "pretrain_stats.json").read_text())
    assert stats["steps"] == 3 and stats["measured"]["problems"] == 4
    assert json.loads((a / "pretrain_config.json").read_text())["size"] == "tiny"
    assert (a / "pretrain_config.yaml").is_file()
    model, tok = load_model(a)
    assert type(model).__name__ == "Qwen2ForCausalLM" and tok.eos_token == "<|end|>"
    with pytest.raises(ValueError, match="already exists"):
        pretrain(_tiny_cfg(a), progress=False)


def test_ensure_base_model_caches(tmp_path, monkeypatch):
    pytest.importorskip("rise.tasks")
    import rise.pretrain as rp

    monkeypatch.setenv("RISE_CACHE", str(tmp_path / "cache"))
    cfg = _tiny_cfg(None, eval_problems=0, max_steps=1)
    first = rp.ensure_base_model(cfg, progress=False)
    assert first.parent.parent == tmp_path / "cache" and rp.is_complete(first)
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers

    def boom(*a, **k):
        raise AssertionError("should reuse the cached base")

    monkeypatch.setattr(rp, "pretrain", boom)
    assert rp.ensure_base_model(cfg, progress=False) == first
    # The measurement settings do not change the weights, hence not the cache key.
    assert rp.ensure_base_model(_tiny_cfg(None, eval_problems=7, max_steps=1), progress=False) == first
    assert _tiny_cfg(None, max_steps=2).cache_key() != cfg.cache_key()


def test_pretrain_config_validation():
    from rise.pretrain import PretrainConfig

    with pytest.raises(ValueError, match="size"):
        PretrainConfig(size="enormous")
    with pytest.raises(ValueError, match="unknown pretrain config keys"):
        PretrainConfig.from_dict({"steps": 3})
    with pytest.raises(ValueError, match="out_dir"):
        from rise.pretrain import pretrain

        pretrain(PretrainConfig(), progress=False)


def test_the_main_job_base_ships_with_the_package_and_matches_its_config():
    """`rise run` with no arguments must find its base in the package (no 18-minute pretraining),
    and the shipped weights must be the ones the default config describes."""
    import json

    from rise.pretrain import PretrainConfig, shipped_base_model
    from rise.run import RunConfig, base_config

    cfg = base_config(RunConfig())
    path = shipped_base_model(cfg)
    assert path is not None, "no shipped base for the default config: rebuild rise/assets"
    shipped = PretrainConfig.from_dict(json.loads((path / "pretrain_config.json").read_text()))
    assert shipped.weights_key() == cfg.weights_key()
