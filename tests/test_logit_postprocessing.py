"""Issue 10.7: the fast loss path (LM head at trained positions only) applies what each
architecture's own forward does to its logits (soft-capping, logit scaling)."""
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rise.train import per_example_nll  # noqa: E402

TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)


def _configs():
    t = transformers
    return {
        "llama": t.LlamaConfig(**TINY),
        "gemma2 (softcap 1.5)": t.Gemma2Config(**TINY, head_dim=16, final_logit_softcapping=1.5),
        "cohere (logit_scale 3)": t.CohereConfig(**TINY, logit_scale=3.0),
        "granite (logits_scaling 0.25)": t.GraniteConfig(**TINY, logits_scaling=0.25),
    }


@pytest.mark.parametrize("name", list(_configs()))
def test_fast_path_loss_equals_the_models_own_loss(name):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(_configs()[name]).eval()
    ids = torch.randint(0, 64, (2, 12))
    attn = torch.ones_like(ids)
    tmask = torch.zeros(2, 11, dtype=torch.bool)
    tmask[:, 5:] = True  # the last 6 tokens are the trained response
    with torch.no_grad():
        fast = per_example_nll(model, ids, attn, tmask, full_logits=False)
        full = per_example_nll(model, ids, attn, tmask, full_logits=True)
        labels = torch.full_like(ids, -100)
        labels[:, 6:] = ids[:, 6:]
        own = torch.stack([model(input_ids=ids[i:i + 1], labels=labels[i:i + 1]).loss for i in range(2)])
    torch.testing.assert_close(full, own, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast, own, rtol=1e-5, atol=1e-6)
