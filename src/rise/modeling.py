"""Loading and saving causal language models: any Hugging Face hub id or local directory.

`load_model` returns `(model, tokenizer)` ready for `rise.engines.hf` and `rise.train`:
- dtype "auto": bfloat16 on a CUDA GPU that supports it, float32 otherwise (CPU, older GPUs);
- device "auto": cuda when available, else cpu;
- the tokenizer must have a chat template (RISE is a multi-turn method and renders every state
  with it); a model without one needs `chat_template=` (a Jinja string or a path to a file);
- a tokenizer without a pad token gets its eos token as pad;
- `trust_remote_code` stays off unless asked for.

Errors are one line and name the model. torch and transformers are imported lazily.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from rise.errors import InputError

_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}

# A Hugging Face repo id: "name" or "owner/name", letters, digits, "-", "_", "." (no "..", no
# leading or trailing separator).
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_plausible_hub_id(name: str) -> bool:
    """Whether `name` could be a Hugging Face hub repo id (and not a file system path)."""
    if not name or name.startswith((".", "/", "~")) or "\\" in name or ".." in name:
        return False
    return bool(_HUB_ID.match(name)) and not name.endswith((".", "-"))


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when available, else "cpu"; anything else is returned unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX512-BF16 in /proc/cpuinfo).

    Such a CPU runs a bf16 matmul several times faster than fp32 (bench/precision.py); on others
    torch emulates bf16 and it is slower, so "auto" stays float32 there. Not Linux: False."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in _BF16_CPU_FLAGS)
    except OSError:
        pass
    return False


def resolve_dtype(dtype: Any = "auto", device: str = "cpu") -> Any:
    """A torch dtype: "auto" -> bfloat16 on CUDA GPUs that support it and on CPUs with native
    bf16 arithmetic (`cpu_has_fast_bf16`), float32 elsewhere."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if str(device).startswith("cpu") and cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32
    try:
        return getattr(torch, _DTYPES[str(dtype).lower()])
    except KeyError:
        raise InputError(
            f"unknown dtype {dtype!r}; use auto, {', '.join(sorted(set(_DTYPES.values())))}"
        ) from None


def read_chat_template(chat_template: str) -> str:
    """A chat template given as Jinja text or as a path to a file holding it."""
    if "{%" in chat_template or "{{" in chat_template:
        return chat_template
    path = Path(chat_template).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise InputError(f"chat template file {str(path)!r} is empty")
        return text
    raise InputError(
        f"chat template {chat_template!r} is neither a Jinja template nor an existing file"
    )


def load_tokenizer(
    name_or_path: str | os.PathLike,
    *,
    trust_remote_code: bool = False,
    chat_template: str | None = None,
    gguf_file: str | None = None,
) -> Any:
    """The tokenizer of `name_or_path`, with a chat template and a pad token (see module doc)."""
    from transformers import AutoTokenizer

    name = check_model_source(name_or_path)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        if _declares_generic_tokenizer(name) and not gguf_file:
            # transformers 5 maps some model types (qwen2 among them) to their own tokenizer
            # class even when tokenizer_config.json names the generic one; that class rebuilds
            # the tokenizer and can drop the saved pre-tokeniser. Honour the saved tokenizer.json.
            from transformers import PreTrainedTokenizerFast

            tokenizer = PreTrainedTokenizerFast.from_pretrained(name, **kwargs)
        else:
            tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - re-raised as one line naming the model
        raise InputError(f"could not load the tokenizer of {name!r}{_where(name)}: {_one_line(exc)}") from exc
    _finish_tokenizer(tokenizer, name, chat_template)
    return tokenizer


def load_model(
    name_or_path: str | os.PathLike,
    *,
    dtype: Any = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    chat_template: str | None = None,
    gguf_file: str | None = None,
) -> tuple[Any, Any]:
    """(model, tokenizer) of a hub id or a local directory, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM

    name = check_model_source(name_or_path)
    tokenizer = load_tokenizer(
        name, trust_remote_code=trust_remote_code, chat_template=chat_template, gguf_file=gguf_file
    )
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "dtype": torch_dtype}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"could not load the model {name!r}{_where(name)}: {_one_line(exc)}") from exc
    model.to(dev)
    model.eval()
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    gen = getattr(model, "generation_config", None)
    if gen is not None and getattr(gen, "pad_token_id", None) is None:
        gen.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save_model(model: Any, tokenizer: Any, out_dir: str | os.PathLike) -> Path:
    """Save model (safetensors) and tokenizer (with its chat template) to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# -- helpers -------------------------------------------------------------------------------------
def check_model_source(name_or_path: str | os.PathLike) -> str:
    """The local path or hub id to load; a missing local path that is no hub id is a one-line
    error naming it (checked before any expensive work)."""
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"model path {name!r} is a file, not a model directory")
        return str(path)
    if not is_plausible_hub_id(name):
        raise InputError(f"model path {name!r} does not exist (and is not a Hugging Face hub id)")
    return name


def _declares_generic_tokenizer(name: str) -> bool:
    """Whether local directory `name` holds a tokenizer.json whose tokenizer_config.json names the
    generic fast tokenizer class."""
    import json

    path = Path(name)
    cfg = path / "tokenizer_config.json"
    if not (path.is_dir() and cfg.is_file() and (path / "tokenizer.json").is_file()):
        return False
    try:
        declared = json.loads(cfg.read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError):
        return False
    return declared in ("TokenizersBackend", "PreTrainedTokenizerFast")


def _where(name: str) -> str:
    return "" if Path(name).exists() else " (no such local directory; tried the Hugging Face hub)"


def _finish_tokenizer(tokenizer: Any, name: str, chat_template: str | None) -> None:
    if chat_template is not None:
        tokenizer.chat_template = read_chat_template(chat_template)
    elif not getattr(tokenizer, "chat_template", None):
        raise InputError(
            f"the tokenizer of {name!r} has no chat template; pass one with the chat_template "
            "option (a Jinja string or a path to a template file)"
        )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise InputError(f"the tokenizer of {name!r} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
