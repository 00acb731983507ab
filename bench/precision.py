#!/usr/bin/env python
"""bf16 against fp32 on this CPU: generation and training tokens/s of a 135M model, one run.

    python bench/precision.py                     # SmolLM2-135M shape, random weights (~3 min)
    python bench/precision.py --model DIR         # a real model directory (e.g. rise convert-gguf's)
    python bench/precision.py --threads 1

Why random weights by default: speed does not depend on the values of the weights, and the
machine has no network, so the bench runs anywhere; both sides generate exactly `--new-tokens`
tokens per row (no stop token), so they do the same work.

generation  `HFBackend.generate` (the KV decoder) on `--prompts` prompts x 1 sample, the model
            loaded in float32 and in bfloat16 (what `engine.dtype: auto` picks on a CPU with
            native bf16: AMX or AVX512-BF16).
training    forward + backward + AdamW on `--train-tokens`-token micro-batches of the fp32
            model, plain and under `torch.autocast("cpu", bfloat16)` (what
            `train.mixed_precision: auto` picks there; fp32 master weights either way).
Each measurement runs `--repeat` times, alternating fp32 and bf16, and the fastest counts (the
machine is shared and noisy; the ratio within one run is the point). The last line reads
`bf16: 6.8x fp32 generation, 1.9x fp32 training (SmolLM2-135M shape (random), 2 threads)`.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                    rope_theta=100000.0, tie_word_embeddings=True, rms_norm_eps=1e-5)


class _Tok:
    """The few tokenizer methods HFBackend needs, over plain token ids (random-weights mode)."""

    chat_template = "x"
    eos_token_id = None
    pad_token_id = 0

    def __init__(self, vocab: int, prompt_len: int):
        self.vocab, self.prompt_len = vocab, prompt_len

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return messages[-1]["content"]

    def __call__(self, prompts, add_special_tokens=False):
        return {"input_ids": [[(hash((p, i)) % (self.vocab - 10)) + 5 for i in range(self.prompt_len)]
                              for p in prompts]}

    def batch_decode(self, rows, skip_special_tokens=True):
        return [" ".join(map(str, r)) for r in rows]


def load(args, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if args.model:
        from rise.modeling import load_model

        model, tok = load_model(args.model, dtype=dtype, device="cpu")
        model.generation_config.eos_token_id = None
        tok.eos_token_id = None   # no early stop: both sides generate --new-tokens tokens
        return model, tok
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).to(getattr(torch, dtype)).eval()
    model.generation_config.eos_token_id = None
    return model, _Tok(SMOLLM2_135M["vocab_size"], args.prompt_len)


def generation_rate(model, tok, args) -> float:
    from rise.engines.hf import HFBackend, SamplingParams

    backend = HFBackend(model, tok, batch_size=args.prompts)
    backend.stop_ids = []
    convs = [[{"role": "user", "content": f"prompt {i}"}] for i in range(args.prompts)]
    t = time.perf_counter()
    out = backend.generate(convs, 1, SamplingParams(1.0, 1.0, args.new_tokens), seed=0)
    dt = time.perf_counter() - t
    assert all(len(o[0].split()) == args.new_tokens for o in out) or args.model
    return args.prompts * args.new_tokens / dt


def training_rate(model, args, bf16: bool) -> float:
    import torch

    torch.manual_seed(1)
    vocab = model.config.vocab_size
    ids = torch.randint(5, vocab - 5, (args.train_batch, args.train_tokens // args.train_batch))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    t = time.perf_counter()
    for _ in range(args.train_steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t
    model.eval()
    return args.train_steps * ids.numel() / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: random SmolLM2-135M shape)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=24)
    ap.add_argument("--train-tokens", type=int, default=1024, help="tokens per optimizer step")
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--train-steps", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    import os

    import torch

    torch.set_num_threads(args.threads)
    from rise.modeling import cpu_has_fast_bf16

    name = args.model or "SmolLM2-135M shape (random)"
    print(f"model: {name}; threads {args.threads}; native bf16: {cpu_has_fast_bf16()}; "
          f"load {os.getloadavg()[0]:.1f}")
    fp32, tok = load(args, "float32")
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    gen = {"fp32": [], "bf16": []}
    train = {"fp32": [], "bf16": []}
    for r in range(args.repeat):
        gen["fp32"].append(generation_rate(fp32, tok, args))
        gen["bf16"].append(generation_rate(bf16, tok, args))
        train["fp32"].append(training_rate(fp32, args, bf16=False))
        train["bf16"].append(training_rate(fp32, args, bf16=True))
        print(f"  repeat {r + 1}: generation fp32 {gen['fp32'][-1]:,.0f} / bf16 {gen['bf16'][-1]:,.0f} "
              f"tokens/s; training fp32 {train['fp32'][-1]:,.0f} / bf16 {train['bf16'][-1]:,.0f} tokens/s",
              flush=True)
    g = max(gen["bf16"]) / max(gen["fp32"])
    t = max(train["bf16"]) / max(train["fp32"])
    print(f"bf16: {g:.1f}x fp32 generation, {t:.1f}x fp32 training ({name}, {args.threads} threads)")


if __name__ == "__main__":
    main()
