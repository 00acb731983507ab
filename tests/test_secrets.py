"""A planted API key never reaches a log, a record, a saved config or an error message."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("torch")

from rise.cli import main  # noqa: E402

KEY = "sk-planted-4f1c9a7e2b5d8c3f6a0e"


class Teacher(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible server that always answers with a worked solution."""

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.headers.get("Authorization") == f"Bearer {KEY}"
        n = body.get("n", 1)
        choices = [{"index": i, "message": {"role": "assistant", "content": f"I think {KEY[:3]}... 2 + 2 = 4\n#### 4"},
                    "finish_reason": "stop"} for i in range(n)]
        data = json.dumps({"id": "x", "object": "chat.completion", "choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def teacher_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Teacher)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_planted_key_in_no_artifact(tiny_model, teacher_url, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "out"
    common = ["--threads", "1", "--quiet"]
    assert main(["collect", "--policy", tiny_model, "--improve", "teacher", "--teacher", "served-teacher",
                 "--teacher_engine.engine", "openai", "--teacher_engine.base_url", teacher_url,
                 "--improve_first_turn", "true", "--best_of", "2", "--limit", "3", "--turns", "2",
                 "--sampling.max_new_tokens", "8", "--out", str(out / "collect"), *common]) == 0
    assert main(["train", "--model", tiny_model, "--rollouts", str(out / "collect" / "rollouts.jsonl"),
                 "--train.max_steps", "1", "--out", str(out / "train"), *common]) == 0
    assert main(["eval", "--model", "served=served-teacher", "--engine.engine", "openai",
                 "--engine.base_url", teacher_url, "--limit", "2", "--turns", "2", "--parallel", "2",
                 "--out", str(out / "eval"), *common]) == 0
    captured = capfd.readouterr()
    recs = (out / "collect" / "rollouts.jsonl").read_text()
    assert "teacher:openai:served-teacher@" in recs  # provenance is recorded ...
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    for p in files:                                  # ... but never the key
        assert KEY.encode() not in p.read_bytes(), p
    assert KEY not in captured.out and KEY not in captured.err


def test_key_not_in_error_message(teacher_url, monkeypatch, capfd, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    rc = main(["eval", "--model", "m=served", "--engine.engine", "openai", "--engine.base_url",
               "http://127.0.0.1:9/v1", "--engine.max_retries", "0", "--limit", "1", "--turns", "1",
               "--parallel", "1", "--out", str(tmp_path / "e"), "--quiet"])
    err = capfd.readouterr().err
    assert rc == 2 and err.startswith("rise: error: POST http://127.0.0.1:9/v1/chat/completions")
    assert KEY not in err
