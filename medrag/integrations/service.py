"""The shared search and ask machinery behind ``medrag serve`` and ``medrag mcp``.

``SearchService`` owns the loaded retriever and searches on ONE worker thread: the retriever's caches need
no locks, the event loop never blocks, and requests that arrive while a search runs are merged — those with
the same (mode, k, filters) go into one ``batch_search`` (the dense encoder embeds them as one batch).
``run_ask`` runs the reasoning loop with every retrieval routed through the service and stops early when
its request is cancelled (client gone, timeout).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, MedragError
from ..reason.api import ask
from ..retrieve.base import Filters, Retriever, check_k, check_query
from ..types import Answer, Hit

__all__ = ["SearchService", "ServiceRetriever", "ServiceBusyError", "CancelledError", "AskParams", "run_ask",
           "public_event"]

log = logging.getLogger(__name__)


class ServiceBusyError(MedragError):
    """Too many queries are waiting; the client should retry later (HTTP 503)."""


class CancelledError(MedragError):
    """The request was cancelled (client disconnected or timed out)."""


@dataclass
class _Job:
    queries: list[str]
    k: int
    mode: str | None
    filters: Filters | None
    future: Future[list[list[Hit]]] = field(default_factory=Future)

    @property
    def key(self) -> tuple[str | None, int, Filters | None]:
        return (self.mode, self.k, self.filters)


class SearchService:
    """Searches ``retriever`` on one worker thread, merging concurrent requests.

    ``submit(queries, k, mode, filters)`` validates at once (QueryError/ConfigError in the caller's thread)
    and returns a ``Future`` of one hit list per query. At most ``max_pending`` queries may wait
    (``ServiceBusyError`` beyond); one ``batch_search`` takes at most ``batch_queries`` queries (a single
    larger request is never split). A cancelled future is skipped.
    """

    def __init__(self, retriever: Retriever, *, batch_queries: int = 64, max_pending: int = 4096) -> None:
        self.retriever = retriever
        self.batch_queries = batch_queries
        self.max_pending = max_pending
        self._modes: dict[str | None, Retriever] = {None: retriever}
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._thread: threading.Thread | None = None
        #: counters: ``batches`` (batch_search calls), ``queries`` (queries searched)
        self.stats = {"batches": 0, "queries": 0}

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> SearchService:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="medrag-search", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def warm_up(self, mode: str | None = None) -> None:
        """Run one search so lazily loaded parts (encoder, FAISS) load now, not on the first request."""
        self.submit(["warm up"], 1, mode).result()

    @property
    def default_mode(self) -> str:
        return str(getattr(self.retriever, "mode", "custom"))

    @property
    def modes(self) -> list[str]:
        return list(getattr(self.retriever, "modes", None) or [self.default_mode])

    # -- requests -----------------------------------------------------------------------------------
    def submit(self, queries: Sequence[str], k: int, mode: str | None = None,
               filters: Filters | Mapping[str, Any] | None = None) -> Future[list[list[Hit]]]:
        if self._thread is None:
            raise ConfigError("the search service is not running (call start())")
        job = _Job([check_query(q) for q in queries], check_k(k), self._mode_key(mode), Filters.parse(filters))
        with self._lock:
            if self._pending + len(job.queries) > self.max_pending:
                raise ServiceBusyError(f"{self._pending} queries are waiting; retry shortly")
            self._pending += len(job.queries)
        self._queue.put(job)
        return job.future

    def _mode_key(self, mode: str | None) -> str | None:
        """``None`` for the retriever's own mode; otherwise prepares (once) a retriever for ``mode``."""
        if mode is None or mode == getattr(self.retriever, "mode", None):
            return None
        with self._lock:
            if mode not in self._modes:
                with_options = getattr(self.retriever, "with_options", None)
                if with_options is None:
                    raise ConfigError(f"this retriever has one mode; mode={mode!r} is not available")
                self._modes[mode] = with_options(mode=mode)  # ConfigError for e.g. dense on a BM25-only index
        return mode

    # -- worker -------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, size, stop = [job], len(job.queries), False
            while size < self.batch_queries:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
                size += len(more.queries)
            groups: dict[tuple[str | None, int, Filters | None], list[_Job]] = {}
            for j in jobs:
                groups.setdefault(j.key, []).append(j)
            for key, group in groups.items():
                self._run(key, group)
            if stop:
                return

    def _run(self, key: tuple[str | None, int, Filters | None], jobs: list[_Job]) -> None:
        mode, k, filters = key
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        queries = [q for j in live for q in j.queries]
        try:
            if queries:
                results = self._modes[mode].batch_search(queries, k=k, filters=filters)
                self.stats["batches"] += 1
                self.stats["queries"] += len(queries)
                start = 0
                for j in live:
                    j.future.set_result(results[start:start + len(j.queries)])
                    start += len(j.queries)
        except Exception as exc:  # forwarded to every request of this batch, whatever it is
            log.debug("batch of %d queries failed: %s", len(queries), exc)
            for j in live:
                if not j.future.done():
                    j.future.set_exception(exc)
        finally:
            with self._lock:
                self._pending -= sum(len(j.queries) for j in jobs)


class ServiceRetriever:
    """The Retriever protocol over a SearchService (what the reasoning loop searches in the servers).

    Raises CancelledError instead of searching once ``cancel`` is set; waits at most ``timeout`` seconds.
    """

    def __init__(self, service: SearchService, mode: str | None = None, *, cancel: threading.Event | None = None,
                 timeout: float | None = None) -> None:
        self.service = service
        self.mode = mode
        self.cancel = cancel or threading.Event()
        self.timeout = timeout

    def search(self, query: str, k: int = 10, filters: Filters | Mapping[str, Any] | None = None) -> list[Hit]:
        return self.batch_search([query], k=k, filters=filters)[0]

    def batch_search(self, queries: Sequence[str], k: int = 10,
                     filters: Filters | Mapping[str, Any] | None = None) -> list[list[Hit]]:
        if self.cancel.is_set():
            raise CancelledError("request cancelled")
        if isinstance(queries, str):
            queries = [queries]
        if not queries:
            return []
        return self.service.submit(list(queries), k, self.mode, filters).result(timeout=self.timeout)


@dataclass(frozen=True)
class AskParams:
    """One ask request (the HTTP body / MCP tool arguments, validated)."""

    question: str
    options: Mapping[str, str] | Sequence[str] | None = None
    mode: str = "followup"
    rounds: int = 4
    queries_per_round: int = 3
    k: int | None = None
    retrieval_mode: str | None = None
    filters: Filters | Mapping[str, Any] | None = None


def run_ask(service: SearchService, llm: Any, params: AskParams, *, cancel: threading.Event | None = None,
            on_event: Callable[[Any], None] | None = None) -> Answer:
    """``medrag.ask`` over the service's retriever and a shared LLM; stops with CancelledError at the next
    search or loop event after ``cancel`` is set."""
    cancel = cancel or threading.Event()

    def events(event: Any) -> None:
        if cancel.is_set():
            raise CancelledError("request cancelled")
        if on_event is not None:
            on_event(event)

    retriever = ServiceRetriever(service, params.retrieval_mode, cancel=cancel)
    return ask(params.question, index=retriever, llm=llm, options=params.options or None, mode=params.mode,
               rounds=params.rounds, queries_per_round=params.queries_per_round, k=params.k,
               filters=params.filters, on_event=events)


def public_event(event: Any, trusted: bool) -> dict[str, Any] | None:
    """A loop event as JSON for clients, or None when it must not be shown: model text other than its
    search queries is streamed only for models trusted to answer clinically (as in ``medrag ask``)."""
    if event.kind == "token" and not (event.stage == "queries" or trusted):
        return None
    if event.kind == "answers" and not trusted:
        return None
    return {"kind": event.kind, "stage": event.stage, "round": event.round, "text": event.text,
            "items": list(event.items)}
