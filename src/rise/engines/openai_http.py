"""A generation backend that calls an OpenAI-compatible HTTP server (`/v1/chat/completions`).

Use it for a teacher served elsewhere (distillation from a stronger model) or to evaluate a model
behind an endpoint: vLLM's `vllm serve`, `transformers serve`, llama.cpp's server, the OpenAI API.

- One request per conversation asks for `n` choices; a server that ignores `n` (returns fewer
  choices) gets follow-up requests for the rest, and once a server has done that the remaining
  requests of the run ask for one choice each (in parallel).
- Requests run on a thread pool of `concurrency` workers; outputs come back in input order.
- Connection errors, timeouts, HTTP 429 and 5xx are retried up to `max_retries` times with
  exponential backoff and jitter (a `Retry-After` header is honoured, capped); any other 4xx fails
  at once with a one-line error naming the URL and the status.
- The API key is read from the environment variable named `api_key_env` at every request and
  sent as `Authorization: Bearer ...`. It is never stored on the object, logged, or put in
  reprs, configs, records or error messages (a server's error text is scrubbed of it, and 401/403
  bodies are not quoted at all). No key in the environment: no Authorization header (local
  servers usually need none).
- Temperature 0 is greedy: one choice is requested and copied n times (as `HFBackend` does).
- Each request carries a `seed` derived from the call's seed, the conversation's index and the
  request's position, so a server that honours seeds gives reproducible samples.

Only the standard library is used (urllib.request, json, concurrent.futures), on purpose: no HTTP
client dependency for an optional feature. `timeout_s` bounds each socket operation (connect, each
read), not a whole request.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rise.engines.base import (
    BackendBase,
    SamplingParams,
    check_request,
    derive_seed,
    fill_greedy,
    progress_bar,
    samples_to_draw,
)

RETRY_STATUS = frozenset({408, 409, 425, 429})  # plus every 5xx


class OpenAIBackendError(RuntimeError):
    """A request to the endpoint failed (after retries where retrying made sense)."""


def _safe_url(url: str) -> str:
    """`url` without any user:password@ part (never show credentials)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def chat_completions_url(base_url: str) -> str:
    """The chat-completions endpoint for a base URL.

    "http://h:8000" and "http://h:8000/v1" (the OpenAI clients' convention) both give
    "http://h:8000/v1/chat/completions"; a URL already ending in /chat/completions is kept.
    """
    if not base_url or "://" not in base_url:
        raise ValueError(f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {base_url!r}")
    scheme = base_url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"base_url must start with http:// or https://, got {_safe_url(base_url)!r}")
    parts = urllib.parse.urlsplit(base_url)
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"base_url must not carry credentials ({_safe_url(base_url)!r}); "
                         "put the key in an environment variable named by api_key_env")
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def request_seed(seed: int, index: int, part: int) -> int:
    """The seed of request `part` of conversation `index` in a call seeded `seed`."""
    return derive_seed(seed, index, part)


class OpenAIBackend(BackendBase):
    """`rise.engines.base.Backend` over an OpenAI-compatible `/v1/chat/completions` endpoint.

    base_url: "http://host:port" or "http://host:port/v1"; model: the served model name (for
    `transformers serve`, the model directory path). api_key_env: NAME of the environment
    variable that holds the key (the key itself is never passed in). concurrency: parallel
    requests. timeout_s: per socket operation. max_retries: retries after the first attempt.
    backoff_s / max_backoff_s: first retry delay and its cap (doubles each retry, plus jitter).
    extra_body: more JSON fields for every request (e.g. {"top_k": 20} for vLLM servers).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        extra_body: dict[str, Any] | None = None,
        progress: bool | str = False,
    ) -> None:
        if not model:
            raise ValueError("model (the served model name) must not be empty")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError("backoff_s and max_backoff_s must be >= 0")
        if api_key_env and not api_key_env.replace("_", "").isalnum():
            raise ValueError(f"api_key_env must be the NAME of an environment variable, got {api_key_env!r}")
        self.url = chat_completions_url(base_url)
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.extra_body = dict(extra_body or {})
        self.progress = progress
        self.honours_n: bool | None = None  # learnt from the first response that asked for n > 1
        self.requests_sent = 0  # HTTP attempts so far (retries included)
        self._lock = threading.Lock()
        # Environment proxies apply, except to a loopback server (reached directly even when
        # http_proxy is set and no_proxy does not list it).
        host = urllib.parse.urlsplit(self.url).hostname or ""
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        handlers = [urllib.request.ProxyHandler({})] if loopback else []
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:  # the key is not an attribute, so it cannot show up here
        return (f"OpenAIBackend(url={_safe_url(self.url)!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})")

    __str__ = __repr__

    # ------------------------------------------------------------------ public API

    def generate(
        self, conversations: list[list[dict]], n: int, params: SamplingParams, seed: int
    ) -> list[list[str]]:
        if not check_request(conversations, n):
            return []
        if params.max_new_tokens == 0:
            return [[""] * n for _ in conversations]
        want = samples_to_draw(n, params)
        # Jobs: (conversation index, part, choices wanted).  Once the server is known to ignore n,
        # every sample is its own request (parallel instead of sequential follow-ups).
        jobs: list[tuple[int, int, int]] = []
        for i in range(len(conversations)):
            if want > 1 and self.honours_n is False:
                jobs.extend((i, j, 1) for j in range(want))
            else:
                jobs.append((i, 0, want))
        out: list[list[str]] = [[] for _ in conversations]
        bar = progress_bar(self.progress, len(jobs), "requests", "req")
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs)),
                                  thread_name_prefix="rise-openai")
        try:
            futures = [pool.submit(self._complete, conversations[i], i, part, k, params, seed)
                       for i, part, k in jobs]
            results = []
            for fut in futures:
                results.append(fut.result())
                if bar is not None:
                    bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            if bar is not None:
                bar.close()
        pool.shutdown(wait=True)
        for (i, _, _), texts in zip(jobs, results, strict=True):
            out[i].extend(texts)
        return [fill_greedy(texts, n, params) for texts in out]

    # ------------------------------------------------------------------ one conversation

    def _complete(self, messages: list[dict], index: int, part: int, k: int,
                  params: SamplingParams, seed: int) -> list[str]:
        """k choices for one conversation: one request asking for k, then follow-ups if needed."""
        texts: list[str] = []
        sub = 0
        while len(texts) < k:
            ask = k - len(texts)
            if ask > 1 and self.honours_n is False:
                ask = 1
            got = self._request(messages, ask, params, request_seed(seed, index, part * 1_000 + sub))
            if not got:
                raise OpenAIBackendError(
                    f"POST {_safe_url(self.url)}: the response has no choices (asked for {ask})")
            if ask > 1 and self.honours_n is None:
                self.honours_n = len(got) >= ask
            texts.extend(got[:ask])
            sub += 1
        return texts

    def _body(self, messages: list[dict], n: int, params: SamplingParams, seed: int) -> dict:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": float(params.temperature),
            "top_p": float(params.top_p),
            "max_tokens": int(params.max_new_tokens),
            "seed": int(seed),
            "stream": False,
        }
        if n != 1:
            body["n"] = int(n)
        body.update(self.extra_body)
        return body

    def _request(self, messages: list[dict], n: int, params: SamplingParams, seed: int) -> list[str]:
        data = json.dumps(self._body(messages, n, params, seed)).encode("utf-8")
        rng = random.Random(seed)  # jitter is seeded: a rerun waits the same way
        url = _safe_url(self.url)
        attempt = 0
        while True:
            key = os.environ.get(self.api_key_env) if self.api_key_env else None
            headers = {"Content-Type": "application/json", "Accept": "application/json",
                       "User-Agent": "rise-openai-backend"}
            if key:
                headers["Authorization"] = "Bearer " + key
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            retry_after: float | None = None
            with self._lock:
                self.requests_sent += 1
            try:
                with self._opener.open(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                return self._parse(raw, url, key)
            except urllib.error.HTTPError as exc:
                status = exc.code
                detail = _error_detail(exc, key)
                retryable = status in RETRY_STATUS or 500 <= status < 600
                if not retryable:
                    hint = ""
                    if status in (401, 403):
                        hint = (f" (check the API key in ${self.api_key_env}"
                                f"{'' if key else ', which is not set'})")
                        detail = ""
                    raise OpenAIBackendError(
                        f"POST {url}: HTTP {status} {exc.reason}{hint}{detail}") from None
                retry_after = _retry_after(exc)
                problem = f"HTTP {status} {exc.reason}{detail}"
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError,
                    http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                problem = f"{type(reason).__name__}: {_scrub(str(reason), key)}"
            if attempt >= self.max_retries:
                raise OpenAIBackendError(
                    f"POST {url}: {problem} (gave up after {attempt + 1} attempts)") from None
            delay = min(self.max_backoff_s, self.backoff_s * (2 ** attempt))
            delay = delay * (0.5 + rng.random())  # jitter: 0.5x .. 1.5x
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.max_backoff_s))
            time.sleep(delay)
            attempt += 1

    def _parse(self, raw: bytes, url: str, key: str | None) -> list[str]:
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            head = _scrub(raw[:200].decode("utf-8", "replace"), key)
            raise OpenAIBackendError(f"POST {url}: the response is not JSON: {head!r}") from None
        if not isinstance(payload, dict):
            raise OpenAIBackendError(f"POST {url}: expected a JSON object, got {type(payload).__name__}")
        if payload.get("error"):
            msg = payload["error"].get("message") if isinstance(payload["error"], dict) else payload["error"]
            raise OpenAIBackendError(f"POST {url}: server error: {_scrub(str(msg), key)[:300]}")
        choices = payload.get("choices")
        if not isinstance(choices, list):
            raise OpenAIBackendError(f"POST {url}: the response has no 'choices' list")
        ordered = sorted(enumerate(choices), key=lambda ic: (_int(ic[1].get("index"), ic[0]), ic[0]))
        texts = []
        for _, choice in ordered:
            message = choice.get("message") or {}
            content = message.get("content")
            if content is None:  # some servers use "text" (completions style) or null content
                content = choice.get("text") or ""
            if isinstance(content, list):  # content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            texts.append(str(content))
        return texts


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _scrub(text: str, key: str | None) -> str:
    """`text` with the API key (if any) replaced, on one line."""
    if key:
        text = text.replace(key, "<redacted>")
    return " ".join(text.split())


def _error_detail(exc: urllib.error.HTTPError, key: str | None) -> str:
    """': <server message>' from an HTTP error body (short, scrubbed), or ''."""
    try:
        raw = exc.read(2000)
    except Exception:  # pragma: no cover - body unreadable
        return ""
    text = raw.decode("utf-8", "replace") if raw else ""
    try:
        payload = json.loads(text)
        err = payload.get("error", payload) if isinstance(payload, dict) else payload
        if isinstance(err, dict):
            text = str(err.get("message") or err.get("detail") or err)
        else:
            text = str(err)
    except (json.JSONDecodeError, AttributeError):
        pass
    text = _scrub(text, key)
    if len(text) > 200:
        text = text[:197] + "..."
    return f": {text}" if text else ""


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
