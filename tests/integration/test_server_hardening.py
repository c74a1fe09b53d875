"""Server hardening over real HTTP on 127.0.0.1 (issue 15 items 7, 9): /health without the key shows liveness
only, upstream LLM details are logged and never returned, a prompt over the model's context is a 400 naming
the limit, Host/Origin checks and CORS, slow-client timeouts, and non-UTF-8 query text."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from _live_server import live_server  # noqa: E402

from medrag.config import ServeConfig  # noqa: E402
from medrag.errors import BackendUnavailableError, ContextOverflowError, LLMError  # noqa: E402
from medrag.reason.testing import ScriptedLLM  # noqa: E402

KEY = "hardening-key"
UPSTREAM = "http://10.20.30.40:8000/v1"
QUESTION = "When should antibiotics be given in septic shock?"


live = live_server  # (base URL, port)


def _raise(exc: Exception) -> Any:
    def reply(text: str, n: int) -> str:
        raise exc
    return reply


@pytest.fixture(scope="module")
def retriever(integrations_index: Path):
    from medrag import load_index

    return load_index(integrations_index, mode="bm25")


def _app(retriever: Any, llm: Any = None, api_key: str | None = None, **cfg: Any) -> Any:
    from medrag.integrations.server import create_app

    return create_app(retriever, llm, ServeConfig(**cfg), api_key=api_key, index_label="/srv/secret/indexes/default")


def _error(response: Any, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"] and "\n" not in body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]["message"]


# ------------------------------------------------------------------------------------------------ /health


def test_health_without_key_is_liveness_only(retriever: Any) -> None:
    llm = ScriptedLLM([(r".*", "ENOUGH")], name=f"openai:{UPSTREAM}#medreason-8b")
    with live(_app(retriever, llm, api_key=KEY)) as (url, _):
        anon = httpx.get(f"{url}/health")
        assert anon.status_code == 200 and anon.json() == {"status": "ok"}
        wrong = httpx.get(f"{url}/health", headers={"X-API-Key": "nope"})
        assert wrong.json() == {"status": "ok"}
        full = httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert full["rows"] == 26 and full["ask"] is True
    assert full["index"] == "default" and full["llm"] == "openai:medreason-8b"
    assert "10.20.30.40" not in json.dumps(full) and "/srv/secret" not in json.dumps(full)


def test_keyless_health_shows_no_url_or_absolute_path(retriever: Any) -> None:
    llm = ScriptedLLM([(r".*", "ENOUGH")], name="llamacpp:/home/me/models/gemma-270m.gguf")
    with live(_app(retriever, llm)) as (url, _):
        body = httpx.get(f"{url}/health").json()
    assert body["index"] == "default" and body["llm"] == "llamacpp:gemma-270m.gguf" and body["rows"] == 26


# --------------------------------------------------------------------------------------------- /ask errors


@pytest.mark.parametrize("exc", [
    BackendUnavailableError(f"{UPSTREAM}/chat/completions: cannot connect: [Errno 111] Connection refused"),
    LLMError(f"{UPSTREAM}/chat/completions: HTTP 500: 'internal [Errno 5] at /opt/x'"),
])
def test_ask_errors_do_not_relay_upstream_details(retriever: Any, caplog: Any, exc: Exception) -> None:
    llm = ScriptedLLM([(r".*", _raise(exc))])
    with caplog.at_level(logging.ERROR), live(_app(retriever, llm)) as (url, _):
        r = httpx.post(f"{url}/ask", json={"question": QUESTION, "mode": "rag"}, timeout=60)
        message = _error(r, 503)
    for secret in ("10.20.30.40", "Errno", "/opt/x", "chat/completions"):
        assert secret not in r.text
    assert "server log" in message
    assert any("10.20.30.40" in rec.getMessage() for rec in caplog.records)  # the operator still sees it


def test_context_overflow_is_400_with_the_limit(retriever: Any) -> None:
    exc = ContextOverflowError(f"{UPSTREAM}/completions: maximum context length is 2048", tokens=3100, limit=2048)
    llm = ScriptedLLM([(r".*", _raise(exc))])
    with live(_app(retriever, llm)) as (url, _):
        r = httpx.post(f"{url}/ask", json={"question": QUESTION, "mode": "rag"}, timeout=60)
    message = _error(r, 400, "context_overflow")
    assert "2048" in message and "3100" in message and "10.20.30.40" not in r.text


def test_openai_backend_maps_upstream_context_errors() -> None:
    from medrag.config import MODEL_PROFILES, LLMConfig
    from medrag.llm.openai_http import OpenAILLM

    def handler(request: Any) -> Any:
        return httpx.Response(400, json={"object": "error", "message": "This model's maximum context length is "
                                         "4096 tokens. However, you requested 5000 tokens (4900 in the messages, "
                                         "100 in the completion)."})

    llm = OpenAILLM(UPSTREAM, "m", MODEL_PROFILES["tiny-base"], LLMConfig(), transport=httpx.MockTransport(handler))
    with pytest.raises(ContextOverflowError) as info:
        llm.generate(["a long prompt"])
    assert (info.value.tokens, info.value.limit) == (5000, 4096)
    assert "4096" in info.value.public_message() and UPSTREAM not in info.value.public_message()


# ---------------------------------------------------------------------------------- Host, Origin and CORS


def test_cross_origin_posts_refused_on_keyless_server(retriever: Any) -> None:
    body = b'{"query": "gout", "k": 1}'
    with live(_app(retriever)) as (url, port):
        plain = {"content-type": "text/plain"}
        evil = httpx.post(f"{url}/search", content=body, headers={**plain, "Origin": "https://evil.example"})
        _error(evil, 403)
        null = httpx.post(f"{url}/search", content=body, headers={**plain, "Origin": "null"})
        _error(null, 403)
        same = httpx.post(f"{url}/search", content=body, headers={**plain, "Origin": f"http://127.0.0.1:{port}"})
        assert same.status_code == 200
        assert httpx.post(f"{url}/search", content=body, headers=plain).status_code == 200  # curl, no Origin
        rebinding = httpx.post(f"{url}/search", content=body, headers={"Host": f"attacker.example:{port}"})
        _error(rebinding, 400, "invalid_host")
        assert httpx.get(f"{url}/health", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_cors_origins_and_allowed_hosts_configurable(retriever: Any) -> None:
    app = _app(retriever, cors_origins=("https://app.example.org",), allowed_hosts=("search.internal",))
    with live(app) as (url, port):
        headers = {"Origin": "https://app.example.org", "Host": f"search.internal:{port}"}
        ok = httpx.post(f"{url}/search", json={"query": "gout", "k": 1}, headers=headers)
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example.org"
        pre = httpx.options(f"{url}/search", headers={**headers, "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 200 and "POST" in pre.headers["access-control-allow-methods"]
        other = httpx.post(f"{url}/search", json={"query": "gout"}, headers={**headers, "Origin": "https://x.org"})
        _error(other, 403)
        _error(httpx.get(f"{url}/health"), 400, "invalid_host")  # Host 127.0.0.1 is not in the list now


def test_cors_off_by_default(retriever: Any) -> None:
    with live(_app(retriever)) as (url, _):
        r = httpx.get(f"{url}/health", headers={"Origin": "https://app.example.org"})
    assert "access-control-allow-origin" not in r.headers


def test_wildcard_bind_accepts_any_host() -> None:
    assert ServeConfig(host="0.0.0.0").host_names() == ("*",)
    assert "127.0.0.1" in ServeConfig().host_names() and "localhost" in ServeConfig().host_names()


# ------------------------------------------------------------------------------------------ slow clients


def _recv_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(socket.timeout, ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_slow_body_times_out_with_408(retriever: Any) -> None:
    with live(_app(retriever, read_timeout=0.5)) as (_, port), socket.create_connection(("127.0.0.1", port)) as s:
        start = time.monotonic()
        s.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"query\": ")
        reply = _recv_all(s, 10)
        elapsed = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"request_timeout"' in reply and elapsed < 5


def test_idle_keep_alive_connection_is_closed(retriever: Any) -> None:
    from medrag.integrations.server import uvicorn_options

    cfg = ServeConfig(keep_alive_timeout=0.5)
    options = {k: v for k, v in uvicorn_options(cfg).items() if k != "timeout_graceful_shutdown"}
    assert options["h11_max_incomplete_event_size"] == cfg.max_header_bytes
    with live(_app(retriever), **options) as (_, port), socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        start = time.monotonic()
        data = _recv_all(s, 10)  # returns when the server closes the idle connection
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 200") and elapsed < 5


def test_oversized_request_head_is_refused(retriever: Any) -> None:
    from medrag.integrations.server import uvicorn_options

    options = {k: v for k, v in uvicorn_options(ServeConfig(max_header_bytes=4096)).items()
               if k != "timeout_graceful_shutdown"}
    with live(_app(retriever), **options) as (_, port), socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: " + b"a" * 20_000)  # a head that never ends
        reply = _recv_all(s, 10)
    assert reply.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), reply[:100]


# ------------------------------------------------------------------------------------ invalid query text


@pytest.mark.parametrize(("path", "payload"), [
    ("/search", '{"query": "gout \\ud800 flare"}'),
    ("/batch_search", '{"queries": ["gout", "\\udfff"]}'),
    ("/ask", '{"question": "which \\ud83d drug?"}'),
])
def test_lone_surrogate_queries_are_one_line_errors(retriever: Any, path: str, payload: str) -> None:
    """The request schema refuses text that is not valid Unicode (422, naming the field), before any search."""
    llm = ScriptedLLM([(r".*", "ENOUGH")])
    with live(_app(retriever, llm)) as (url, _):
        r = httpx.post(url + path, content=payload.encode(), headers={"content-type": "application/json"})
    assert "unicode" in _error(r, 422, "validation_error").lower()
