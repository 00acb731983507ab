"""Turn a model setting into a generation backend (the boundary where engines load).

A model setting is a Hugging Face hub id or a local directory. The engine is chosen by
`engine`: "hf" (transformers, CPU or GPU). Heavy imports happen here, lazily.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineConfig:
    engine: str = "hf"               # hf
    batch_size: int = 64             # rows (prompt x sample) per forward pass
    dtype: str = "auto"              # auto: bf16 on GPUs that support it, fp32 on CPU
    device: str = "auto"
    trust_remote_code: bool = False
    chat_template: str | None = None  # Jinja string or file, for tokenizers without one

    def __post_init__(self):
        if self.engine not in ("hf",):
            raise ValueError(f"engine must be 'hf', got {self.engine!r}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {self.batch_size}")


def open_backend(model: str, cfg: EngineConfig, progress: bool | str = False):
    """A `rise.generation.Backend` serving `model`."""
    from rise.generation import HFBackend
    from rise.modeling import load_model

    lm, tok = load_model(model, dtype=cfg.dtype, device=cfg.device,
                         trust_remote_code=cfg.trust_remote_code, chat_template=cfg.chat_template)
    return HFBackend(lm, tok, batch_size=cfg.batch_size, progress=progress)


def set_threads(n: int | None) -> None:
    """Pin torch's CPU thread count (on 2-core machines 1-2 threads beat the default)."""
    if n:
        import torch

        torch.set_num_threads(n)
