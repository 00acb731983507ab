"""Trainer: target-only masking, and the weighted loss equal to its unbatched definition."""
import copy

import pytest

torch = pytest.importorskip("torch")

from rise.episodes import with_response  # noqa: E402
from rise.train import (  # noqa: E402
    TrainConfig,
    collate,
    encode_examples,
    fit,
    global_batches,
    lr_at,
    micro_batches,
    per_example_nll,
    render,
    tokenize_example,
)

TEXTS = ["Tom has 3 apples and buys 4 more. How many apples?", "3 + 4 = 7\n#### 7",
         "Sue had 12 pens and lost 5.", "12 - 5 = 7\n#### 7", "The answer is incorrect. Please try again."]


@pytest.fixture(scope="module")
def tiny():
    from rise.embedded import build_model, build_tokenizer

    torch.set_num_threads(1)
    tok = build_tokenizer(TEXTS * 5, vocab_size=300)
    model = build_model(tok, size="tiny", seed=0)
    return model, tok


def examples():
    conv1 = [{"role": "user", "content": TEXTS[0]}]
    conv2 = [{"role": "user", "content": TEXTS[2]}, {"role": "assistant", "content": "12 - 5 = 8\n#### 8"},
             {"role": "user", "content": TEXTS[4]}]
    return [
        {"messages": with_response(conv1, TEXTS[1]), "weight": 12.18},
        {"messages": with_response(conv2, TEXTS[3]), "weight": 1.0},
        {"messages": with_response(conv1, "#### 9"), "weight": 0.082},
        {"messages": with_response(conv2, "12 - 5 = 7 so the answer is 7\n#### 7"), "weight": 12.18},
    ]


def test_only_the_last_assistant_turn_is_trained(tiny):
    _, tok = tiny
    msgs = examples()[1]["messages"]
    ids, mask = tokenize_example(tok, msgs, "last")
    prompt = render(tok, msgs[:-1], add_generation_prompt=True)
    n_prompt = sum(1 for m in mask if not m)
    assert tok.decode(ids[:n_prompt]) == prompt
    assert tok.decode([i for i, m in zip(ids, mask, strict=True) if m]).startswith(TEXTS[3] + "<|end|>")
    assert all(mask[n_prompt:]) and not any(mask[:n_prompt])


def test_all_assistant_trains_every_assistant_turn(tiny):
    _, tok = tiny
    ids, mask = tokenize_example(tok, examples()[1]["messages"], "all_assistant")
    trained = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert "12 - 5 = 8" in trained and "12 - 5 = 7" in trained and "Sue" not in trained


def _reference_loss(model, tok, exs):
    """The definition, one example at a time with full logits: (1/N) sum_i w_i mean_t NLL_it."""
    total = 0.0
    for ex in exs:
        ids, mask = tokenize_example(tok, ex["messages"])
        x = torch.tensor([ids])
        logits = model(input_ids=x).logits[0, :-1]
        tgt = torch.tensor(ids[1:])
        m = torch.tensor(mask[1:])
        nll = torch.nn.functional.cross_entropy(logits[m], tgt[m])
        total = total + ex["weight"] * nll
    return total / len(exs)


@pytest.mark.parametrize("budget", [1, 64, 10_000])
@pytest.mark.parametrize("full_logits", [False, True])
def test_micro_batched_loss_and_grads_equal_the_definition(tiny, budget, full_logits):
    model, tok = tiny
    exs = examples()
    cfg = TrainConfig(micro_batch_tokens=budget)
    enc, skipped = encode_examples(tok, exs, cfg)
    assert skipped == 0
    lengths = [len(e.input_ids) for e in enc]
    model.zero_grad()
    ref = _reference_loss(model, tok, exs)
    ref.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    total = 0.0
    for mb in micro_batches(list(range(len(enc))), lengths, budget):
        ids, attn, tmask, w = collate([enc[i] for i in mb], tok.pad_token_id)
        loss = (w * per_example_nll(model, ids, attn, tmask, full_logits)).sum() / len(enc)
        loss.backward()
        total += float(loss.detach())
    assert total == pytest.approx(float(ref), rel=1e-5)
    for g, r in zip((p.grad for p in model.parameters()), ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_micro_batches_respect_budget_and_cover_all():
    lengths = [5, 50, 7, 49, 6, 100]
    mbs = micro_batches(list(range(6)), lengths, 100)
    assert sorted(i for mb in mbs for i in mb) == list(range(6))
    for mb in mbs:
        assert len(mb) == 1 or max(lengths[i] for i in mb) * len(mb) <= 100


def test_global_batches_are_seeded_epochs():
    a = global_batches(10, 4, 5, seed=3)
    assert a == global_batches(10, 4, 5, seed=3) and a != global_batches(10, 4, 5, seed=4)
    assert sorted(a[0] + a[1] + a[2][:2]) == list(range(10))  # first epoch covers every example once


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1.0, warmup_ratio=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0) and lrs[-1] < 0.01


def test_fit_lowers_the_loss(tiny):
    from rise.embedded import build_model

    _, tok = tiny
    model = build_model(tok, size="tiny", seed=1)
    stats = fit(model, tok, examples() * 4, TrainConfig(lr=3e-3, max_steps=30, batch_size=4, warmup_ratio=0),
                progress=False)
    assert stats["steps"] == 30 and stats["final_loss"] < stats["loss"][0] * 0.7
    assert stats["peak_memory_bytes"] > 0 and stats["tokens_per_s"] > 0


def test_eval_sets_are_scored_before_during_and_after_training(tiny):
    from rise.embedded import build_model
    from rise.train import mean_nll, nll_module

    _, tok = tiny
    model = build_model(tok, size="tiny", seed=2)
    held = {"seen": examples()[:2], "other": examples()[2:]}
    enc = encode_examples(tok, held["seen"], TrainConfig())[0]
    ids, attn, tmask, _ = collate(enc, tok.pad_token_id)
    with torch.no_grad():
        before = per_example_nll(model, ids, attn, tmask).mean().item()
    # mean_nll micro-batches; it must equal the plain mean over examples
    got = mean_nll(nll_module(model, False), enc, tok.pad_token_id, 16, model.device)
    assert got == pytest.approx(before, rel=1e-5)
    cfg = TrainConfig(lr=3e-3, max_steps=10, batch_size=2, warmup_ratio=0, eval_every=4)
    stats = fit(model, tok, examples()[:2] * 4, cfg, progress=False, eval_sets=held)
    curve = stats["eval_nll"]
    assert curve["step"] == [0, 4, 8, 10] and len(curve["seen"]) == len(curve["other"]) == 4
    assert curve["seen"][0] == pytest.approx(before, rel=1e-5)
    assert curve["seen"][-1] < 0.7 * curve["seen"][0]  # trained on exactly these: NLL falls
    assert model.training is False


def test_eval_every_does_not_change_training(tiny):
    from rise.embedded import build_model

    _, tok = tiny
    runs = []
    for every, sets in ((0, None), (3, {"x": examples()})):
        model = build_model(tok, size="tiny", seed=3)
        cfg = TrainConfig(lr=3e-3, max_steps=6, batch_size=2, warmup_ratio=0, eval_every=every)
        runs.append(fit(model, tok, examples() * 2, cfg, progress=False, eval_sets=sets)["loss"])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("budget", [64, 10_000])
def test_fit_logs_at_step_0_the_objective_computed_without_fit(budget):
    """Issue 10.9: the loss `fit` reports for its first step is the paper's weighted objective,
    (1/N) sum_i exp(r_i/tau)-weight_i * mean-token-NLL_i, computed here from a plain forward pass
    of the untouched model, whatever the micro-batching."""
    import copy

    from rise.embedded import build_model, build_tokenizer

    torch.set_num_threads(1)
    tok = build_tokenizer(TEXTS * 5, vocab_size=300)
    model = build_model(tok, size="tiny", seed=1)
    exs = examples()
    with torch.no_grad():
        expected = float(_reference_loss(model.eval(), tok, exs))
    cfg = TrainConfig(batch_size=len(exs), max_steps=1, micro_batch_tokens=budget, lr=1e-3)
    stats = fit(copy.deepcopy(model), tok, exs, cfg, progress=False)
    assert stats["loss"][0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("matmul", [False, True])
def test_bf16_autocast_loss_agrees_with_fp32(matmul):
    """The CPU bf16 path (autocast over fp32 master weights, as accelerate runs it), with the
    model's own attention and with rise's matmul attention (train.attention auto on a CPU): the
    per-example NLL of a tiny model agrees with fp32 within 2% relative, and one optimizer step
    moves the fp32 weights the same way (cosine of the updates > 0.99)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rise.attention import training_attention
    from rise.train import per_example_nll

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = LlamaForCausalLM(cfg)
    ids = torch.randint(0, 97, (4, 24))
    attn = torch.ones_like(ids)
    tmask = torch.zeros(4, 23, dtype=torch.bool)
    tmask[:, 10:] = True
    updates = {}
    for mode in ("fp32", "bf16"):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=1.0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"), \
                training_attention(m, packed=False, matmul=matmul and mode == "bf16"):
            nll = per_example_nll(m, ids, attn, tmask)
        nll.sum().backward()
        before = torch.cat([p.detach().flatten().clone() for p in m.parameters()])
        opt.step()
        updates[mode] = (torch.cat([p.detach().flatten() for p in m.parameters()]) - before, nll.detach())
        assert next(m.parameters()).dtype == torch.float32             # master weights stay fp32
    torch.testing.assert_close(updates["bf16"][1], updates["fp32"][1], rtol=2e-2, atol=0)
    cos = torch.nn.functional.cosine_similarity(updates["bf16"][0], updates["fp32"][0], dim=0)
    assert cos > 0.99
