"""SearchService: merging concurrent requests, grouping, cancellation, errors, back-pressure; ask plumbing."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError as FutureCancelled

import pytest

from medrag.errors import ConfigError, QueryError
from medrag.integrations.service import (
    AskParams,
    CancelledError,
    SearchService,
    ServiceBusyError,
    ServiceRetriever,
    public_event,
    run_ask,
)
from medrag.reason.runner import LoopEvent
from medrag.reason.testing import ScriptedLLM, ToyRetriever
from medrag.types import Hit


def _hits() -> list[Hit]:
    texts = ["aspirin reduces stroke", "warfarin needs INR monitoring", "metformin for diabetes",
             "apixaban in atrial fibrillation", "sepsis needs antibiotics within one hour"]
    return [Hit(f"d{i}#0", f"d{i}", 0.0, 0, t, f"title {i}", "s", "toy") for i, t in enumerate(texts)]


class Gate(ToyRetriever):
    """A ToyRetriever whose first batch_search waits until ``release`` is set (to pile requests up)."""

    def __init__(self) -> None:
        super().__init__(_hits())
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[tuple[list[str], int, object]] = []

    def batch_search(self, queries, k=10, filters=None):  # type: ignore[no-untyped-def]
        self.calls.append((list(queries), k, filters))
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(10)
        return super().batch_search(queries, k, filters)


@pytest.fixture()
def gated():
    retriever = Gate()
    service = SearchService(retriever, batch_queries=64, max_pending=100).start()
    yield retriever, service
    retriever.release.set()
    service.close()


def test_concurrent_requests_are_merged_by_key(gated) -> None:
    retriever, service = gated
    first = service.submit(["aspirin"], 2)
    assert retriever.entered.wait(5)
    same = [service.submit([q], 2) for q in ("warfarin", "metformin", "sepsis")]
    other_k = service.submit(["apixaban"], 1)
    retriever.release.set()
    assert [h.chunk_id for h in first.result(5)[0]][:1] == ["d0#0"]
    assert [f.result(5)[0][0].chunk_id for f in same] == ["d1#0", "d2#0", "d4#0"]
    assert len(other_k.result(5)[0]) == 1
    assert [c[0] for c in retriever.calls] == [["aspirin"], ["warfarin", "metformin", "sepsis"], ["apixaban"]]
    assert service.stats == {"batches": 3, "queries": 5}


def test_cancelled_requests_are_skipped(gated) -> None:
    retriever, service = gated
    service.submit(["aspirin"], 1)
    assert retriever.entered.wait(5)
    dropped = service.submit(["warfarin"], 1)
    kept = service.submit(["metformin"], 1)
    assert dropped.cancel()
    retriever.release.set()
    assert kept.result(5)[0][0].chunk_id == "d2#0"
    with pytest.raises(FutureCancelled):
        dropped.result(0)
    assert ["warfarin"] not in [c[0] for c in retriever.calls] and ["metformin"] in [c[0] for c in retriever.calls]


def test_backpressure_and_validation(gated) -> None:
    retriever, service = gated
    service.submit(["aspirin"] * 60, 1)
    assert retriever.entered.wait(5)
    service.submit(["warfarin"] * 40, 1)
    with pytest.raises(ServiceBusyError):
        service.submit(["metformin"], 1)
    with pytest.raises(QueryError):
        service.submit(["  "], 1)
    with pytest.raises(QueryError):
        service.submit(["x"], 0)
    with pytest.raises(QueryError, match="unknown filter"):
        service.submit(["x"], 1, filters={"journal": "x"})
    with pytest.raises(ConfigError, match="one mode"):
        service.submit(["x"], 1, mode="dense")
    retriever.release.set()


def test_errors_reach_every_request_of_the_batch() -> None:
    class Broken(ToyRetriever):
        def batch_search(self, queries, k=10, filters=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("index file vanished")

    service = SearchService(Broken(_hits())).start()
    try:
        future = service.submit(["aspirin", "warfarin"], 1)
        with pytest.raises(RuntimeError, match="vanished"):
            future.result(5)
        service.submit(["x"], 1)  # pending count released: still accepting
    finally:
        service.close()


def test_service_retriever_and_cancel() -> None:
    service = SearchService(ToyRetriever(_hits())).start()
    try:
        cancel = threading.Event()
        r = ServiceRetriever(service, cancel=cancel)
        assert r.search("sepsis antibiotics", k=1)[0].chunk_id == "d4#0"
        assert r.batch_search([], k=1) == []
        cancel.set()
        with pytest.raises(CancelledError):
            r.search("sepsis", k=1)
    finally:
        service.close()


def test_run_ask_routes_retrieval_through_the_service_and_stops_when_cancelled() -> None:
    toy = ToyRetriever(_hits())
    service = SearchService(toy).start()
    llm = ScriptedLLM([(r".*", "ENOUGH")], profile="chat")
    try:
        answer = run_ask(service, llm, AskParams(question="Which drug for sepsis antibiotics timing?", mode="rag"))
        assert answer.question.startswith("Which drug") and answer.answered_by in ("model", "evidence", "none")
        assert service.stats["queries"] >= 1 and toy.batches
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(CancelledError):
            run_ask(service, llm, AskParams(question="sepsis antibiotics?", mode="rag"), cancel=cancel)
    finally:
        service.close()


def test_public_event_hides_untrusted_model_text() -> None:
    token = LoopEvent("token", stage="final", text="take 5 mg")
    query_token = LoopEvent("token", stage="queries", text="apixaban dose")
    assert public_event(token, trusted=False) is None
    assert public_event(token, trusted=True)["text"] == "take 5 mg"
    assert public_event(query_token, trusted=False)["text"] == "apixaban dose"
    assert public_event(LoopEvent("answers", items=("x",)), trusted=False) is None
    assert public_event(LoopEvent("retrieved", items=("d1#0",)), trusted=False)["items"] == ["d1#0"]
