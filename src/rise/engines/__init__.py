"""Generation engines: turn a model setting into a `Backend` (the boundary where engines load).

  base          SamplingParams, the Backend protocol, request checks, the greedy copy, seeds
  hf            HFBackend: transformers in this process (kv_decode: its fast decode loop)
  vllm_engine   VLLMBackend: vLLM's offline engine
  openai_http   OpenAIBackend: any OpenAI-compatible server
Every backend is a context manager: `with open_backend(model, cfg) as b:` frees it at the end.

The engine is chosen by `engine`:
  hf      transformers in this process (CPU or GPU); `model` is a hub id or a local directory;
  vllm    vLLM's offline engine (`pip install 'recursive-introspection[vllm]'`); `model` is a hub id or a local
          directory; n samples per prompt, prefix caching, tensor parallelism;
  openai  an OpenAI-compatible HTTP server at `base_url`; `model` is the SERVED model name.
          The API key is read from the environment variable named by `api_key_env` (never put
          the key itself in a config: configs are saved beside every output).
Heavy imports happen here, lazily.
"""
from __future__ import annotations

from dataclasses import dataclass

from rise.engines.base import Backend, SamplingParams, check_request, derive_seed
from rise.errors import InputError

ENGINES = ("hf", "vllm", "openai")


@dataclass
class EngineConfig:
    engine: str = "hf"               # hf | vllm | openai
    decoder: str = "auto"            # hf: auto | kv | hf | generate (rise.engines.hf)
    # hf: rows (prompt x sample) decoded at once (128 beat 64 on the embedded model; 256 sampled
    # turn-1 states faster in a sweep but was no faster, or slower, in rise eval's own turns)
    batch_size: int = 128
    dtype: str = "auto"              # hf/vllm: auto = bf16 on GPUs and CPUs with native bf16, else fp32
    device: str = "auto"             # hf
    trust_remote_code: bool = False  # hf/vllm
    chat_template: str | None = None  # hf/vllm: Jinja string or file, for tokenizers without one
    # vllm
    tensor_parallel_size: int = 1    # GPUs per engine
    gpu_memory_utilization: float = 0.9  # vllm: fraction of GPU memory the engine may take
    enable_prefix_caching: bool = True  # turn-k prompts share long prefixes
    max_model_len: int | None = None  # vllm: longest prompt + response (None: the model's own)
    # openai
    base_url: str | None = None      # e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # NAME of the env var holding the key (not the key)
    concurrency: int = 8             # parallel requests
    timeout_s: float = 60.0          # per socket operation
    max_retries: int = 4             # on connection errors, timeouts, 429 and 5xx

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        from rise.engines.hf import DECODERS

        if self.decoder not in DECODERS:
            raise InputError(f"decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if self.batch_size <= 0:
            raise InputError(f"batch_size must be > 0, got {self.batch_size}")
        if self.tensor_parallel_size < 1:
            raise InputError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise InputError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise InputError(f"max_model_len must be >= 1, got {self.max_model_len}")
        if self.concurrency < 1:
            raise InputError(f"concurrency must be >= 1, got {self.concurrency}")
        if not self.timeout_s > 0:
            raise InputError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0:
            raise InputError(f"max_retries must be >= 0, got {self.max_retries}")
        if not self.api_key_env.replace("_", "").isalnum():
            raise InputError(
                f"api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                f"not a key; got a value of {len(self.api_key_env)} characters")
        if self.engine == "openai" and not self.base_url:
            raise InputError("engine 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")


def open_backend(model: str, cfg: EngineConfig, progress: bool | str = False):
    """A `rise.engines.base.Backend` serving `model` with the engine `cfg.engine`."""
    if cfg.engine == "openai":
        from rise.engines.openai_http import OpenAIBackend

        return OpenAIBackend(cfg.base_url or "", model, api_key_env=cfg.api_key_env,
                             concurrency=cfg.concurrency, timeout_s=cfg.timeout_s,
                             max_retries=cfg.max_retries, progress=progress)
    if cfg.engine == "vllm":
        from rise.engines.vllm_engine import VLLMBackend

        chat_template = None
        if cfg.chat_template:
            from rise.modeling import read_chat_template

            chat_template = read_chat_template(cfg.chat_template)
        return VLLMBackend(model, tensor_parallel_size=cfg.tensor_parallel_size,
                           enable_prefix_caching=cfg.enable_prefix_caching,
                           gpu_memory_utilization=cfg.gpu_memory_utilization,
                           dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code,
                           max_model_len=cfg.max_model_len, chat_template=chat_template,
                           progress=progress)
    from rise.engines.hf import HFBackend
    from rise.modeling import load_model

    lm, tok = load_model(model, dtype=cfg.dtype, device=cfg.device,
                         trust_remote_code=cfg.trust_remote_code, chat_template=cfg.chat_template)
    return HFBackend(lm, tok, batch_size=cfg.batch_size, progress=progress, decoder=cfg.decoder)


def describe(model: str, cfg: EngineConfig) -> str:
    """Provenance of a model setting for records: "hf:<model>", "vllm:<model>",
    "openai:<model>@<base_url>" (never a key)."""
    if cfg.engine == "openai":
        from rise.engines.openai_http import _safe_url

        return f"openai:{model}@{_safe_url(cfg.base_url or '')}"
    return f"{cfg.engine}:{model}"


__all__ = ["Backend", "ENGINES", "EngineConfig", "SamplingParams", "check_request", "derive_seed",
           "describe", "open_backend", "set_threads"]


def set_threads(n: int | None) -> None:
    """Pin torch's CPU thread count (on 2-core machines 1-2 threads beat the default)."""
    if n:
        import torch

        torch.set_num_threads(n)
