"""The HTTP service over real HTTP on 127.0.0.1 (uvicorn in a thread), on a real small hybrid index.

LLM side: medrag's ScriptedLLM (a scripted model that always says ENOUGH, so answers fall back to cited
evidence). Includes a schemathesis run against the live OpenAPI schema (no 5xx, responses match the schema).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
schemathesis = pytest.importorskip("schemathesis")

from _live_server import live_server  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from medrag.config import ServeConfig  # noqa: E402
from medrag.reason.testing import ScriptedLLM  # noqa: E402

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
CONFIG = ServeConfig(max_body_bytes=8192, max_k=50, max_batch=8, max_rounds=3)


@contextlib.contextmanager
def live(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on an ephemeral loopback port; yields the base URL."""
    with live_server(app) as (url, _port):
        yield url


@pytest.fixture(scope="module")
def retriever(integrations_index: Path):
    from medrag import load_index

    return load_index(integrations_index)


@pytest.fixture(scope="module")
def base_url(retriever) -> Iterator[str]:
    from medrag.integrations.server import create_app

    llm = ScriptedLLM([(r".*", "ENOUGH")], profile="chat")
    with live(create_app(retriever, llm, CONFIG, api_key=KEY)) as url:
        yield url


@pytest.fixture()
def client(base_url: str) -> Iterator[Any]:
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=60) as c:
        yield c


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]["message"]


# ---------------------------------------------------------------------------------------------- happy paths


def test_health_needs_no_key(base_url: str) -> None:
    r = httpx.get(f"{base_url}/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}  # liveness only without the key
    body = httpx.get(f"{base_url}/health", headers=AUTH).json()
    assert body["status"] == "ok" and body["rows"] == 26 and body["modes"] == ["hybrid", "bm25", "dense"]
    assert body["default_mode"] == "hybrid" and body["llm"] == "scripted" and body["ask"] is True


def test_search_matches_the_library(client: Any, retriever: Any) -> None:
    query = "anticoagulant for atrial fibrillation with chronic kidney disease"
    r = client.post("/search", json={"query": query, "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["mode"] == "hybrid" and body["k"] == 3
    expected = retriever.search(query, k=3)
    assert [h["chunk_id"] for h in body["hits"]] == [h.chunk_id for h in expected]
    top = body["hits"][0]
    assert top["rank"] == 1 and top["metadata"]["pmid"] == "31000001" and top["metadata"]["year"] == 2019


def test_search_mode_and_filters(client: Any) -> None:
    r = client.post("/search", json={"query": "warfarin monitoring", "k": 5, "mode": "bm25",
                                     "filters": {"source": ["textbooks"], "year": None}})
    assert r.status_code == 200 and r.json()["mode"] == "bm25"
    hits = r.json()["hits"]
    assert hits and {h["source"] for h in hits} == {"textbooks"}
    r = client.post("/search", json={"query": "stroke prevention", "k": 10, "filters": {"year": [2020, None]}})
    assert r.status_code == 200 and all(h["metadata"]["year"] >= 2020 for h in r.json()["hits"])


def test_curl_style_bodies_are_json(client: Any) -> None:
    """``curl host/search -d '{...}'`` sends a form content type (or none): the body is still read as JSON."""
    body = b'{"query": "septic shock antibiotics", "k": 1}'
    for headers in ({"content-type": "application/x-www-form-urlencoded"}, {}):
        r = client.post("/search", content=body, headers=headers)
        assert r.status_code == 200 and r.json()["hits"][0]["chunk_id"] == "pubmed:31000003#0"


def test_batch_search(client: Any, retriever: Any) -> None:
    queries = ["septic shock antibiotics", "metformin kidney function"]
    r = client.post("/batch_search", json={"queries": queries, "k": 2, "mode": "dense"})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["query"] for x in results] == queries
    dense = retriever.with_options(mode="dense")
    for x, q in zip(results, queries, strict=True):
        assert [h["chunk_id"] for h in x["hits"]] == [h.chunk_id for h in dense.search(q, k=2)]


def test_ask_returns_a_cited_answer(client: Any) -> None:
    question = "When should antibiotics be given in septic shock?"
    r = client.post("/ask", json={"question": question, "mode": "rag", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["question"] == question and body["answered_by"] in ("model", "evidence", "none")
    assert body["trace"] == [] and body["disclaimer"]
    assert body["citations"] and body["citations"][0]["chunk_id"] in {
        "pubmed:31000003#0", "guideline:sepsis/initial#0"}
    traced = client.post("/ask", json={"question": question, "mode": "followup", "rounds": 2,
                                       "include_trace": True}).json()
    assert traced["trace"] and traced["trace"][0]["retrievals"]


def test_ask_stream_sends_events_then_the_answer(client: Any) -> None:
    with client.stream("POST", "/ask/stream", json={"question": "antibiotics in septic shock?", "mode": "rag"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [(block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1].removeprefix("data: ")))
                  for block in r.read().decode().strip().split("\n\n")]
    names = [name for name, _ in events]
    assert names[0] == "retrieved" and names[-1] == "answer" and "error" not in names
    assert events[-1][1]["question"] == "antibiotics in septic shock?"


# --------------------------------------------------------------------------------------------- bad requests


def test_bad_json_is_400(client: Any) -> None:
    r = client.post("/search", content=b'{"query": "x", ', headers={"content-type": "application/json"})
    _error(r, 400, "invalid_json")


def test_oversize_bodies_are_413(client: Any) -> None:
    big = json.dumps({"query": "x" * 9000}).encode()
    _error(client.post("/search", content=big, headers={"content-type": "application/json"}), 413,
           "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming in
        yield big[:4000]
        yield big[4000:]

    _error(client.post("/search", content=chunks(), headers={"content-type": "application/json"}), 413,
           "payload_too_large")


@pytest.mark.parametrize("k", [0, -1, 51, "five", 2.5])
def test_bad_k_is_422(client: Any, k: Any) -> None:
    message = _error(client.post("/search", json={"query": "sepsis", "k": k}), 422, "validation_error")
    assert message.startswith("k:")


@pytest.mark.parametrize("body,status,code", [
    ({"query": "   "}, 422, "validation_error"),
    ({"query": "x" * 2001}, 422, "validation_error"),
    ({"query": "x", "filters": {"journal": ["x"]}}, 422, "validation_error"),
    ({"query": "x", "filters": {"year": [2020, 2010]}}, 400, "bad_request"),
    ({"query": "x", "mode": "sparse"}, 422, "validation_error"),
    ({"queries": ["a"] * 9}, 422, "validation_error"),
])
def test_invalid_requests(client: Any, body: dict, status: int, code: str) -> None:
    path = "/batch_search" if "queries" in body else "/search"
    _error(client.post(path, json=body), status, code)


def test_bad_ask_options_are_400(client: Any) -> None:
    _error(client.post("/ask", json={"question": "q?", "rounds": 4}), 422, "validation_error")  # max_rounds 3
    _error(client.post("/ask", json={"question": "q?", "options": {"AB": "x"}}), 422, "validation_error")


def test_api_key_is_required_before_the_body_is_read(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as anon:
        _error(anon.post("/search", json={"query": "sepsis"}), 401, "unauthorized")
        _error(anon.post("/search", content=b"{not json"), 401, "unauthorized")
        _error(anon.post("/search", json={"query": "sepsis"}, headers={"Authorization": "Bearer wrong"}), 401,
               "unauthorized")
        _error(anon.post("/search", json={"query": "sepsis"}, headers={"X-API-Key": KEY + "x"}), 401, "unauthorized")
        assert anon.post("/search", json={"query": "sepsis"}, headers={"X-API-Key": KEY}).status_code == 200
        assert anon.get("/openapi.json").status_code == 200


def test_unknown_route_and_method(client: Any) -> None:
    _error(client.get("/nope"), 404, "not_found")
    _error(client.get("/search"), 405, "method_not_allowed")


def test_openapi_states_limits_and_security(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/search", "/batch_search", "/ask", "/ask/stream", "/health"} <= set(spec["paths"])
    search = spec["paths"]["/search"]["post"]
    assert search["security"] and "413" in search["responses"] and "504" in search["responses"]
    k = spec["components"]["schemas"]["SearchRequest"]["properties"]["k"]
    assert k["maximum"] == 50 and k["minimum"] == 1


# ------------------------------------------------------------------- timeouts, failures, responsiveness


class Slow:
    """Delegates to a real retriever after ``delay`` seconds (or raises, to test 500s)."""

    def __init__(self, inner: Any, delay: float = 0.0, fail: bool = False) -> None:
        self.inner, self.delay, self.fail, self.mode = inner, delay, fail, "hybrid"
        self.warm = True

    def search(self, query: str, k: int = 10, filters: Any = None) -> list:
        return self.batch_search([query], k, filters)[0]

    def batch_search(self, queries: list, k: int = 10, filters: Any = None) -> list:
        if self.warm:  # the start-up warm-up search passes straight through
            self.warm = False
            return self.inner.batch_search(queries, k, filters)
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("secret internal detail /srv/index/file")
        return self.inner.batch_search(queries, k, filters)


def test_timeout_504_no_llm_503_and_a_responsive_loop(retriever: Any) -> None:
    from medrag.integrations.server import create_app

    app = create_app(Slow(retriever, delay=1.5), None, ServeConfig(search_timeout=0.3))
    with live(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        async def concurrently() -> tuple[Any, float]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as ac:
                slow = asyncio.create_task(ac.post("/search", json={"query": "sepsis"}))
                await asyncio.sleep(0.1)
                t0 = time.perf_counter()
                health = await ac.get("/health")
                assert health.status_code == 200
                return await slow, time.perf_counter() - t0

        slow, health_seconds = asyncio.run(concurrently())
        _error(slow, 504, "timeout")
        assert health_seconds < 0.3  # answered while the search thread was busy
        _error(c.post("/ask", json={"question": "sepsis?"}), 503, "ask_unavailable")
        _error(c.post("/ask/stream", json={"question": "sepsis?"}), 503, "ask_unavailable")


def test_internal_errors_are_500_without_details(retriever: Any) -> None:
    from medrag.integrations.server import create_app

    with live(create_app(Slow(retriever, fail=True), None)) as url:
        r = httpx.post(f"{url}/search", json={"query": "sepsis"}, timeout=30)
        assert _error(r, 500, "internal_error") == "internal server error"
        assert "secret" not in r.text and "/srv" not in r.text


def test_concurrent_searches_all_succeed_and_match(client: Any, base_url: str, retriever: Any) -> None:
    queries = [f"{w} treatment" for w in ("sepsis", "asthma", "warfarin", "metformin", "statin", "lithium",
                                           "heparin", "pneumonia")] * 8

    async def run() -> list[Any]:
        async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=60) as ac:
            return await asyncio.gather(*(ac.post("/search", json={"query": q, "k": 3}) for q in queries))

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    for q, r in zip(queries[:8], responses[:8], strict=True):
        assert [h["chunk_id"] for h in r.json()["hits"]] == [h.chunk_id for h in retriever.search(q, k=3)]


# --------------------------------------------------------------------------------------------- schemathesis


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_server_errors(base_url: str, mode: str) -> None:
    """Schema-driven requests (valid ones, then invalid ones) to every operation of the live server: none
    may get a 5xx, and every response must match the schema the server publishes."""
    from hypothesis import given
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    calls: dict[str, int] = {}

    def make_check(operation: Any) -> Any:
        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        @settings(max_examples=20, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=AUTH, timeout=60, checks=[not_a_server_error, response_schema_conformance])
            calls[operation.label] = calls.get(operation.label, 0) + 1

        return check

    for result in schema.get_all_operations():
        operation = result.ok()
        if mode == "negative" and operation.method.upper() == "GET":
            continue  # /health takes no input: there is nothing to make invalid
        make_check(operation)()
    posts = {"POST /search", "POST /batch_search", "POST /ask", "POST /ask/stream"}
    assert set(calls) == (posts if mode == "negative" else posts | {"GET /health"})
    assert sum(calls.values()) >= 40
