"""What every generation engine shares: sampling parameters, the `Backend` protocol, request
checks, the greedy copy and the one seed scheme. Standard library only.

Seeds: every generate call of a run gets its seed from `derive_seed(run_seed, *parts)`, where the
parts name the call (collect: chunk, turn, purpose; eval: chunk, turn, purpose), and an engine
that seeds each request (vLLM, HTTP) derives the request's seed from the call's seed the same way
(`derive_seed(call_seed, index, part)`). One mixing function, so nearby parts never give
correlated streams and no two schemes can collide.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from rise.errors import InputError

_MASK64 = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: temperature 0 is greedy; top_p 1.0 is plain sampling."""

    temperature: float = 1.0      # softmax temperature; 0 is greedy (one sample, copied n times)
    top_p: float = 1.0            # nucleus sampling: keep the most likely tokens up to this mass
    max_new_tokens: int = 256     # most tokens a response may have

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise InputError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class Backend(Protocol):
    def generate(
        self, conversations: list[list[dict]], n: int, params: SamplingParams, seed: int
    ) -> list[list[str]]:
        """n completions per conversation (assistant text only, end tokens stripped), in order.

        Each conversation is a list of chat messages whose last message is from the user.
        """
        ...

    def close(self) -> None:
        """Free the engine (GPU memory, worker processes, connections)."""
        ...


class BackendBase:
    """Context-manager support for backends: `with open_backend(...) as b:` closes the engine."""

    def close(self) -> None:  # engines with resources override this
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_request(conversations: Sequence, n: int) -> bool:
    """The argument checks every backend's `generate` shares; False when there is nothing to do."""
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    for i, conv in enumerate(conversations):
        if not conv:
            raise InputError(f"conversation {i} has no messages")
    return bool(conversations)


def samples_to_draw(n: int, params: SamplingParams) -> int:
    """Rows to decode for n samples: greedy samples are identical, so one is decoded and copied."""
    return 1 if params.greedy else n


def fill_greedy(texts: list[str], n: int, params: SamplingParams) -> list[str]:
    """The n samples of one conversation from the `samples_to_draw` decoded ones."""
    return texts[:1] * n if params.greedy else texts[:n]


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_seed(seed: int, *parts: int) -> int:
    """A reproducible 31-bit seed for the call (or request) named by `parts` under `seed`:
    splitmix64 folded over the parts, so (1, 2) and (2, 1) and nearby seeds are unrelated."""
    x = _splitmix64(int(seed) & _MASK64)
    for p in parts:
        x = _splitmix64(x ^ (int(p) & _MASK64))
    return int(x & 0x7FFFFFFF)


def progress_bar(progress: bool | str, total: int, default_desc: str, unit: str):
    """A tqdm bar when `progress` is truthy (a string is its description), else None."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    desc = progress if isinstance(progress, str) else default_desc
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
