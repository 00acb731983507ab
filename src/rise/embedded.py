"""The embedded default base model: a byte-level BPE tokenizer, a small Qwen2 config and the
pretraining corpus. Built from scratch on the synthetic `arith` task, so that the whole pipeline
runs offline on a CPU (nothing is downloaded).

The pretraining corpus is what an instruct model would have seen: mostly single-turn
conversations (question -> worked solution) plus conversations of 2-3 DIFFERENT questions where
each follow-up user turn introduces the next question with a varied phrasing ("Great job! Next
question: ...", "Here's the question: ..."). It never contains RISE's feedback line or any
wrong-then-corrected pair: the base must not already know how to self-correct (that is what RISE
teaches); it only knows multi-turn chats, so that after the feedback line (which restates the
question) it answers that question again instead of writing garbage.

torch, transformers and tokenizers are imported lazily.
"""
from __future__ import annotations

import random
import re
from typing import Any, Iterable, Sequence

from rise.errors import InputError
from rise.prompts import get_preset

SPECIAL_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>")
EOS_TOKEN = "<|end|>"
PAD_TOKEN = "<|pad|>"
# Qwen2Tokenizer's split regex (transformers, models/qwen2/tokenization_qwen2.py): every digit is
# a piece of its own.
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""  # noqa: E501 - copied whole from Qwen2Tokenizer
)

# Each message: "<|role|>\n{content}<|end|>\n"; the generation prompt is "<|assistant|>\n".
# Assistant turns are wrapped in {% generation %} so `return_assistant_tokens_mask` works.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|assistant|>\n' }}{% generation %}{{- message['content'] + '<|end|>' }}{% endgeneration %}{{- '\n' }}"
    "{%- else %}"
    "{{- '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\n' }}{%- endif %}"
)

# name -> Qwen2 shape. "default" is sized for pretraining on a 2-core CPU in about 5 minutes: at
# that budget a 1.2M-parameter model learns the arith task faster per CPU-second than the 2.5M
# "medium" (both break through the copy-the-operands plateau after about the same number of
# optimizer steps, and "medium" costs twice as much per step).
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                 intermediate_size=128),
    "default": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                    intermediate_size=512),
    "medium": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=6,
                   intermediate_size=768),
    "large": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8,
                  intermediate_size=2048),
}

# `arith` difficulty the "default" base is calibrated for (2-step problems, every number and
# intermediate <= 99): pass the same options to collection and evaluation.
CPU_ARITH_OPTIONS: dict[str, Any] = {"max_value": 99, "max_steps": 2}

# Follow-up user turns of multi-turn pretraining chats: each introduces a NEW question. None says
# the previous answer was wrong, none asks to try again.
FOLLOW_UPS: tuple[str, ...] = (
    "Great job! Next question: {q}",
    "Here's the question: {q}",
    "Now try this one. Here's the question: {q}",
    "Great job! You've successfully answered the question. Now, let's move on to the next one.\n{q}",
    "Thanks. Here's the next question: {q}",
    "Good. Let's do another one. Here's the question: {q}",
    "Next one. Here's the question: {q}",
    "Well done! Please solve this one. Here's the question: {q}",
    "OK. Here's another question: {q}",
    "Now solve this: {q}",
    "{q}",
)

# Words that belong to RISE's feedback and must never appear in the pretraining corpus.
FORBIDDEN_PHRASES: tuple[str, ...] = ("incorrect", "try again", "answer again", "wrong")


# -- tokenizer -----------------------------------------------------------------------------------
def build_tokenizer(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2) -> Any:
    """A byte-level BPE `PreTrainedTokenizerFast` trained on `texts` (deterministic).

    Digits are split one per token so arithmetic stays learnable; the five special tokens
    (`<|system|>`, `<|user|>`, `<|assistant|>`, `<|end|>`, `<|pad|>`) take ids 0-4; eos is
    `<|end|>`, pad `<|pad|>`; the chat template renders `<|role|>\\n{content}<|end|>\\n`.

    Normaliser and pre-tokeniser are exactly those of `Qwen2Tokenizer` (NFC, then Qwen2's split
    regex, whose `\\p{N}` alternative isolates every digit, then byte-level): transformers 5 loads
    the tokenizer of any directory whose config says `qwen2` as a `Qwen2Tokenizer`, which rebuilds
    the pipeline from vocabulary and merges with those components, so both ways of loading give
    the same token ids. (A `Digits(individual_digits=True)` pre-tokeniser would have split the
    same digits but differs from Qwen2's regex on runs of spaces before a digit.)
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Sorted, de-duplicated input: the merges depend only on the set of texts.
    tok.train_from_iterator(sorted(set(texts)), trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=EOS_TOKEN,  # byte-level BPE never emits unk; keeps Qwen2Tokenizer from adding one
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS_TOKEN, PAD_TOKEN)],
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


# -- model ---------------------------------------------------------------------------------------
def model_config(tokenizer: Any, size: str = "default", max_position_embeddings: int = 1024) -> Any:
    """A small Qwen2 (RoPE, tied embeddings) `Qwen2Config` for `tokenizer`.

    Sizes (parameters with a 1024-token vocabulary, tied embeddings counted once): "tiny" ~0.1M
    (tests), "default" ~1.2M (2-core CPU), "medium" ~2.5M, "large" ~34M (GPU).
    """
    from transformers import Qwen2Config

    try:
        shape = SIZES[size]
    except KeyError:
        raise InputError(f"unknown model size {size!r}; known: {', '.join(SIZES)}") from None
    return Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        hidden_act="silu",
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        initializer_range=0.02,
        use_sliding_window=False,
        attention_dropout=0.0,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **shape,
    )


def build_model(tokenizer: Any, size: str = "default", seed: int = 0) -> Any:
    """A freshly initialised `Qwen2ForCausalLM` (float32), seeded."""
    import torch
    from transformers import Qwen2ForCausalLM

    config = model_config(tokenizer, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model


def count_parameters(model: Any) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


# -- corpus --------------------------------------------------------------------------------------
def pretraining_conversations(
    problems: Sequence[Any],
    rng: random.Random,
    *,
    multi_turn_fraction: float = 0.4,
    max_questions: int = 3,
    preset: str = "default",
) -> list[list[dict]]:
    """Chat conversations covering every problem once, in a shuffled order.

    A fraction `multi_turn_fraction` of the conversations hold 2..`max_questions` different
    questions (each follow-up user turn introduces the next question with one of `FOLLOW_UPS`);
    the rest are single-turn. Every assistant turn is the problem's reference solution. Problems
    need `question` and `solution` attributes (`rise.tasks.Problem`).
    """
    if not 0 <= multi_turn_fraction <= 1:
        raise InputError(f"multi_turn_fraction must be in [0, 1], got {multi_turn_fraction}")
    if max_questions < 1:
        raise InputError(f"max_questions must be >= 1, got {max_questions}")
    p = get_preset(preset)
    if p.few_shot or p.system:
        # The follow-up phrasings below assume the question itself opens the conversation.
        prefix: list[dict] = []
        if p.system:
            prefix.append({"role": "system", "content": p.system})
        for user, assistant in p.few_shot:
            prefix += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    else:
        prefix = []
    order = list(range(len(problems)))
    rng.shuffle(order)
    convs: list[list[dict]] = []
    i = 0
    while i < len(order):
        k = 1
        if max_questions > 1 and rng.random() < multi_turn_fraction:
            k = rng.randint(2, max_questions)
        group = [problems[j] for j in order[i:i + k]]
        i += k
        msgs = list(prefix)
        for n, prob in enumerate(group):
            if n == 0:
                user = p.question.format(question=prob.question)
            else:
                user = rng.choice(FOLLOW_UPS).format(q=prob.question)
            msgs.append({"role": "user", "content": user})
            msgs.append({"role": "assistant", "content": prob.solution})
        convs.append(msgs)
    return convs


_STEP_RE = re.compile(r"(\d+) ([-+*/]) (\d+) = <<[^>]*>>(\d+)")


def arithmetic_drills(problems: Sequence[Any], rng: random.Random, ratio: float) -> list[list[dict]]:
    """Short single-turn drills of the calculations inside worked solutions ("What is 47 + 38?"
    -> "47 + 38 = <<47+38=85>>85 ... #### 85"), for a fraction `ratio` of the problems.

    Why: a tiny model from scratch spends most of its CPU budget learning the digits of each
    calculation, which word problems show only a few times per sequence; drills give the same
    facts at a fraction of the tokens (as instruct models see arithmetic drills among their data).
    """
    convs = []
    for prob in problems:
        if rng.random() >= ratio:
            continue
        for a, op, b, c in _STEP_RE.findall(prob.solution):
            convs.append([{"role": "user", "content": f"What is {a} {op} {b}?"},
                          {"role": "assistant", "content": f"{a} {op} {b} = <<{a}{op}{b}={c}>>{c}\n#### {c}"}])
    rng.shuffle(convs)
    return convs


def corpus_texts(conversations: Iterable[list[dict]]) -> list[str]:
    """The message contents of `conversations` (what the tokenizer is fitted on)."""
    return [m["content"] for conv in conversations for m in conv]


def contains_feedback(conversations: Iterable[list[dict]]) -> bool:
    """Whether any message holds a phrase of RISE's feedback (see `FORBIDDEN_PHRASES`)."""
    for conv in conversations:
        for m in conv:
            low = m["content"].lower()
            if any(f in low for f in FORBIDDEN_PHRASES):
                return True
    return False
