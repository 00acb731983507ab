"""rise.engines.openai_http: the OpenAI-compatible HTTP backend.

Everything here talks to REAL servers on loopback: small `http.server` servers in a thread (to
script 503s, 4xx errors, servers that ignore `n`) and `transformers serve` on a tiny local Qwen2
model (started and stopped by the test).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rise.engines import EngineConfig, describe, open_backend
from rise.engines.base import SamplingParams
from rise.engines.openai_http import (
    OpenAIBackend,
    OpenAIBackendError,
    chat_completions_url,
    request_seed,
)

KEY_ENV = "RISE_TEST_OPENAI_KEY"
PLANTED = "sk-planted-DO-NOT-LEAK-0123456789abcdef"

CONVS = [
    [{"role": "user", "content": "What is 2+3?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "5"}, {"role": "user", "content": "Try again."}],
    [{"role": "user", "content": "third"}],
]


# -- a scriptable local server -------------------------------------------------------------------
class Script:
    """What the local server answers: `plan` is a list of statuses for successive requests (then
    200); `honour_n` whether a 200 carries n choices or just one; `echo_key` puts the received
    Authorization header in error bodies (a careless server)."""

    def __init__(self, plan=(), honour_n=True, echo_key=False, delay_s=0.0):
        self.plan = list(plan)
        self.honour_n = honour_n
        self.echo_key = echo_key
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()


def _handler(script: Script):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _send(self, status, payload, headers=()):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.requests.append(body)
                script.auth.append(self.headers.get("Authorization"))
                script.paths.append(self.path)
                status = script.plan.pop(0) if script.plan else 200
            if script.delay_s:
                time.sleep(script.delay_s)
            if status != 200:
                msg = f"scripted {status}"
                if script.echo_key:
                    msg += f" for {self.headers.get('Authorization')}"
                self._send(status, {"error": {"message": msg}}, [("Retry-After", "0")])
                return
            n = body.get("n", 1) if script.honour_n else 1
            last = body["messages"][-1]["content"]
            choices = [{"index": j, "message": {"role": "assistant",
                                                "content": f"{last}|seed={body['seed']}|{j}"},
                        "finish_reason": "stop"} for j in range(n)]
            self._send(200, {"object": "chat.completion", "choices": list(reversed(choices))})

    return Handler


@pytest.fixture
def server():
    servers = []

    def start(script: Script) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/v1"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def planted_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, PLANTED)
    return PLANTED


def _backend(url, **kw):
    kw.setdefault("api_key_env", KEY_ENV)
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_backoff_s", 0.05)
    kw.setdefault("timeout_s", 10)
    return OpenAIBackend(url, "served-model", **kw)


# -- pure helpers --------------------------------------------------------------------------------
def test_chat_completions_url():
    for base in ("http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/",
                 "http://h:8000/v1/chat/completions"):
        assert chat_completions_url(base) == "http://h:8000/v1/chat/completions"
    with pytest.raises(ValueError, match="http"):
        chat_completions_url("127.0.0.1:8000")
    with pytest.raises(ValueError, match="http"):
        chat_completions_url("ftp://h/v1")


def test_request_seed_is_reproducible_and_spread():
    seeds = {request_seed(s, i, p) for s in range(3) for i in range(20) for p in range(5)}
    assert len(seeds) == 300
    assert all(0 <= x < 2**31 for x in seeds)
    assert request_seed(7, 3, 1) == request_seed(7, 3, 1)


def test_engine_config_and_dispatch(planted_key):
    with pytest.raises(ValueError, match="base_url"):
        EngineConfig(engine="openai")
    with pytest.raises(ValueError, match="engine must be one of"):
        EngineConfig(engine="tgi")
    with pytest.raises(ValueError, match="NAME of an environment variable") as err:
        EngineConfig(engine="openai", base_url="http://x/v1", api_key_env=PLANTED)
    assert PLANTED not in str(err.value)
    cfg = EngineConfig(engine="openai", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV,
                       concurrency=3, timeout_s=5, max_retries=1)
    backend = open_backend("served-model", cfg)
    assert isinstance(backend, OpenAIBackend)
    assert (backend.url, backend.model, backend.concurrency, backend.timeout_s, backend.max_retries) == (
        "http://127.0.0.1:9/v1/chat/completions", "served-model", 3, 5.0, 1)
    assert describe("served-model", cfg) == "openai:served-model@http://127.0.0.1:9/v1"
    assert describe("m", EngineConfig()) == "hf:m"


def test_key_never_in_repr_or_attributes(planted_key):
    b = _backend("http://127.0.0.1:9/v1")
    for text in (repr(b), str(b), json.dumps({k: str(v) for k, v in vars(b).items()})):
        assert PLANTED not in text
    with pytest.raises(ValueError, match="credentials") as err:
        _backend("http://user:s3cret@127.0.0.1:9/v1")
    assert "s3cret" not in str(err.value)
    assert KEY_ENV in repr(b)


# -- against local http.server -------------------------------------------------------------------
def test_retries_503_then_succeeds(server, planted_key):
    script = Script(plan=[503, 503])
    b = _backend(server(script), concurrency=1)
    out = b.generate(CONVS[:1], 2, SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=16), seed=5)
    assert len(script.requests) == 3 and b.requests_sent == 3
    assert script.paths == ["/v1/chat/completions"] * 3
    assert script.auth == [f"Bearer {PLANTED}"] * 3  # read from the environment, sent as Bearer
    body = script.requests[-1]
    assert body["model"] == "served-model" and body["n"] == 2
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.9, 16)
    assert body["messages"] == CONVS[0]
    seed = request_seed(5, 0, 0)
    assert body["seed"] == seed
    # choices are put back in index order (the server sent them reversed)
    assert out == [[f"What is 2+3?|seed={seed}|0", f"What is 2+3?|seed={seed}|1"]]


def test_gives_up_after_max_retries(server, planted_key):
    script = Script(plan=[500] * 10, echo_key=True)
    url = server(script)
    b = _backend(url, max_retries=2)
    with pytest.raises(OpenAIBackendError) as err:
        b.generate(CONVS[:1], 1, SamplingParams(), seed=0)
    msg = str(err.value)
    assert len(script.requests) == 3
    assert "HTTP 500" in msg and "3 attempts" in msg and url in msg
    assert PLANTED not in msg and "\n" not in msg


@pytest.mark.parametrize("status", [400, 401, 404])
def test_4xx_fails_at_once_without_the_key(server, planted_key, status):
    script = Script(plan=[status], echo_key=True)
    url = server(script)
    b = _backend(url, max_retries=4)
    with pytest.raises(OpenAIBackendError) as err:
        b.generate(CONVS[:1], 1, SamplingParams(), seed=0)
    msg = str(err.value)
    assert len(script.requests) == 1  # no retry
    assert f"HTTP {status}" in msg and url in msg and "\n" not in msg
    assert PLANTED not in msg and PLANTED not in repr(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained HTTPError
    if status == 401:
        assert KEY_ENV in msg
    if status == 400:
        assert "scripted 400" in msg and "<redacted>" in msg  # server text kept, key scrubbed


def test_no_key_no_authorization_header(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    script = Script()
    b = _backend(server(script))
    b.generate(CONVS[:1], 1, SamplingParams(), seed=0)
    assert script.auth == [None]


def test_key_is_read_at_call_time(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    script = Script()
    b = _backend(server(script))
    monkeypatch.setenv(KEY_ENV, "sk-later")
    b.generate(CONVS[:1], 1, SamplingParams(), seed=0)
    assert script.auth == ["Bearer sk-later"]


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = _backend(f"http://127.0.0.1:{port}", max_retries=1)
    t0 = time.monotonic()
    with pytest.raises(OpenAIBackendError, match=rf"127\.0\.0\.1:{port}.*2 attempts"):
        b.generate(CONVS[:1], 1, SamplingParams(), seed=0)
    assert b.requests_sent == 2 and time.monotonic() - t0 < 5


def test_order_and_concurrency(server, planted_key):
    script = Script(delay_s=0.05)
    b = _backend(server(script), concurrency=3)
    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(9)]
    t0 = time.monotonic()
    out = b.generate(convs, 2, SamplingParams(), seed=1)
    wall = time.monotonic() - t0
    assert [o[0].split("|")[0] for o in out] == [f"q{i}" for i in range(9)]
    assert all(len(o) == 2 for o in out)
    assert wall < 9 * 0.05 * 0.9  # requests overlapped
    # same seed -> same request seeds (reproducible against a seeded server)
    assert b.generate(convs, 2, SamplingParams(), seed=1) == out


def test_server_that_ignores_n(server, planted_key):
    script = Script(honour_n=False)
    b = _backend(server(script), concurrency=2)
    out = b.generate(CONVS, 3, SamplingParams(), seed=0)
    assert [len(o) for o in out] == [3, 3, 3]
    assert b.honours_n is False
    for o, conv in zip(out, CONVS, strict=True):
        assert all(t.startswith(conv[-1]["content"] + "|") for t in o)
        assert len(set(o)) == 3  # each extra request has its own seed
    first = len(script.requests)
    # later calls send one request per sample (n omitted)
    b.generate(CONVS[:1], 3, SamplingParams(), seed=0)
    assert len(script.requests) - first == 3
    assert all("n" not in r for r in script.requests[first:])


def test_greedy_asks_once_and_copies(server, planted_key):
    script = Script()
    b = _backend(server(script))
    out = b.generate(CONVS[:2], 4, SamplingParams(temperature=0.0), seed=0)
    assert len(script.requests) == 2 and all("n" not in r for r in script.requests)
    assert all(r["temperature"] == 0.0 for r in script.requests)
    assert all(len(o) == 4 and len(set(o)) == 1 for o in out)


def test_zero_tokens_and_empty_input(server):
    script = Script()
    b = _backend(server(script))
    assert b.generate([], 2, SamplingParams(), seed=0) == []
    assert b.generate(CONVS[:2], 2, SamplingParams(max_new_tokens=0), seed=0) == [["", ""], ["", ""]]
    assert script.requests == []
    with pytest.raises(ValueError, match="n must be"):
        b.generate(CONVS[:1], 0, SamplingParams(), seed=0)


# -- against `transformers serve` ----------------------------------------------------------------
def _serve_command() -> list[str] | None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return None
    script = Path(sys.executable).with_name("transformers")
    if script.exists():
        return [str(script)]
    found = shutil.which("transformers")
    return [found] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_served_model(out_dir: Path) -> Path:
    """A tiny random Qwen2 + byte-level BPE tokenizer with a chat template, saved for serving.

    Two settings make `transformers serve` usable with a non-ChatML template: a
    `response_template` on the tokenizer (serve's fallback for qwen2 models expects ChatML's
    `<|im_start|>assistant` and would return the prompt as the answer), and `do_sample=True`
    in the generation config (serve samples only when the model's config says so; a request's
    temperature alone does not turn sampling on).
    """
    pytest.importorskip("torch")
    pytest.importorskip("tokenizers")
    from rise.embedded import EOS_TOKEN, build_model, build_tokenizer

    tok = build_tokenizer(["Tom has 12 apples and buys 35 more: 12 + 35 = 47.",
                           "What is 2+3? It is 5.", "hello there, how are you"] * 3, vocab_size=300)
    tok.response_template = {
        "defaults": {"role": "assistant"},
        "start_anchor": "<|assistant|>\n",
        "fields": {"content": {"close": EOS_TOKEN, "content": "text"}},
    }
    model = build_model(tok, "tiny", seed=0)
    model.generation_config.do_sample = True
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def served_model(tmp_path_factory):
    cmd = _serve_command()
    if cmd is None:
        pytest.skip("`transformers serve` needs the serving extra: pip install 'transformers[serving]'")
    model_dir = build_served_model(tmp_path_factory.mktemp("served") / "tiny-qwen2")
    port = _free_port()
    log_path = model_dir.parent / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop(KEY_ENV, None)
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [*cmd, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
         "--no-continuous-batching", "--log-level", "warning", str(model_dir)],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {proc.returncode}: "
                                   f"{log_path.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve not ready after 60 s: "
                                   f"{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.25)
        yield base, model_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def test_transformers_serve_end_to_end(served_model, planted_key):
    base, model_dir = served_model
    cfg = EngineConfig(engine="openai", base_url=base + "/v1", api_key_env=KEY_ENV, concurrency=2,
                       timeout_s=30, max_retries=2)
    backend = open_backend(str(model_dir), cfg)
    convs = [CONVS[0], CONVS[1]]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=8)
    out = backend.generate(convs, 2, params, seed=0)
    assert len(out) == 2 and [len(o) for o in out] == [2, 2]
    assert all(isinstance(t, str) for o in out for t in o)
    # a random model: not the prompt echoed back, not always empty
    assert any(t.strip() for o in out for t in o)
    assert not any("<|user|>" in t or "<|assistant|>" in t for o in out for t in o)
    # greedy: one request per conversation, copied n times
    greedy = backend.generate(convs, 2, SamplingParams(temperature=0.0, max_new_tokens=6), seed=0)
    assert all(len(o) == 2 and o[0] == o[1] for o in greedy)
    assert backend.generate(convs, 1, SamplingParams(temperature=0.0, max_new_tokens=6), seed=9) == \
        [o[:1] for o in greedy]
    assert PLANTED not in repr(backend)
