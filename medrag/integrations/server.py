"""The HTTP service (FastAPI): ``/search``, ``/batch_search``, ``/ask``, ``/ask/stream``, ``/health``.

>>> from medrag import load_index
>>> from medrag.integrations.server import create_app
>>> app = create_app(load_index("indexes/default"), llm=None)     # serve with uvicorn.run(app)

The index (and the LLM, when given) is loaded once and shared by all requests. Searches run on the
:class:`~medrag.integrations.service.SearchService` worker thread (the event loop stays responsive and
concurrent requests are merged into batches); asks run on ``ask_concurrency`` threads. Limits, timeouts and
the optional API key come from :class:`~medrag.config.ServeConfig`; every error is
``{"error": {"code", "message"}}`` (see :mod:`medrag.integrations.http_layer`).
Requires ``pip install 'medrag[serve]'``.
"""

# no ``from __future__ import annotations``: FastAPI reads the route annotations at runtime

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import PurePath
from typing import Any

from .._optional import require
from .._version import __version__
from ..config import ServeConfig
from ..reason.runner import normalize_options
from ..retrieve.base import Filters, Retriever, check_query
from .service import AskParams, SearchService, public_event, run_ask

require("fastapi", "fastapi", "serve", "the HTTP service")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import StreamingResponse  # noqa: E402

from .http_layer import (  # noqa: E402
    AUTHORIZED,
    ERROR_RESPONSES,
    ApiError,
    ApiKeyGuard,
    BodyLimitGuard,
    HostOriginGuard,
    JsonBody,
    describe_error,
    install_error_handlers,
)
from .schemas import (  # noqa: E402
    AnswerModel,
    BatchSearchResponse,
    HealthResponse,
    QueryHits,
    SearchResponse,
    answer_model,
    hits_model,
    request_models,
)

__all__ = ["create_app", "ServerState", "uvicorn_options"]

log = logging.getLogger(__name__)


class ServerState:
    """What the routes share: the search service, the LLM, the config and the ask thread pool."""

    def __init__(self, service: SearchService, llm: Any, config: ServeConfig, index_label: str) -> None:
        self.service = service
        self.llm = llm
        self.config = config
        self.index_label = index_label
        self.ask_pool: ThreadPoolExecutor | None = None

    async def search(self, queries: list[str], k: int, mode: str | None, filters: Filters | None) -> list[Any]:
        """Hits per query from the service, or 504 after ``search_timeout`` seconds."""
        future = self.service.submit(queries, k, mode, filters)
        return await _wait(future, self.config.search_timeout, "search")

    def require_llm(self) -> None:
        if self.llm is None or self.ask_pool is None:
            raise ApiError(503, "this server has no LLM loaded: start it with --llm SPEC (or without --no-llm)",
                           "ask_unavailable")

    async def ask(self, params: AskParams, on_event: Callable[[Any], None] | None = None) -> Any:
        """The Answer, computed on the ask pool; 503 without an LLM, 504 after ``ask_timeout`` seconds.
        When the awaiting request goes away (timeout, disconnect) the run stops at its next step."""
        self.require_llm()
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self.ask_pool, lambda: run_ask(self.service, self.llm, params, cancel=cancel,
                                                                     on_event=on_event))
        try:
            return await asyncio.wait_for(call, self.config.ask_timeout)
        except asyncio.TimeoutError as exc:
            raise ApiError(504, f"ask took longer than {self.config.ask_timeout:g}s") from exc
        finally:
            cancel.set()


async def _wait(future: Future, timeout: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except asyncio.TimeoutError as exc:
        future.cancel()
        raise ApiError(504, f"{what} took longer than {timeout:g}s") from exc


def _filters(model: Any) -> Filters | None:
    return None if model is None else Filters.parse(model.model_dump(exclude_none=True))


def create_app(retriever: Retriever | SearchService, llm: Any = None, config: ServeConfig | None = None, *,
               api_key: str | None = None, index_label: str = "") -> FastAPI:
    """The FastAPI application over a loaded retriever (or a running SearchService) and an optional LLM.

    ``api_key``: required from clients (``Authorization: Bearer`` or ``X-API-Key``) when given. The service
    is started (and warmed up) when the app starts and, when created here, closed when it stops. The LLM is
    not closed here: its owner closes it.
    """
    cfg = config or ServeConfig()
    own = not isinstance(retriever, SearchService)
    service = retriever if isinstance(retriever, SearchService) else \
        SearchService(retriever, batch_queries=cfg.batch_queries, max_pending=cfg.max_pending)
    state = ServerState(service, llm, cfg, index_label or str(getattr(service.retriever, "path", "")))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        await asyncio.to_thread(service.warm_up)
        state.ask_pool = ThreadPoolExecutor(max_workers=cfg.ask_concurrency, thread_name_prefix="medrag-ask") \
            if llm is not None else None
        try:
            yield
        finally:
            if state.ask_pool is not None:
                state.ask_pool.shutdown(wait=False, cancel_futures=True)
            if own:
                service.close()

    app = FastAPI(title="medrag", version=__version__, lifespan=lifespan,
                  description="Medical retrieval (hybrid BM25 + dense) and cited, evidence-checked answers. "
                              "Not medical advice.")
    app.state.medrag = state
    install_error_handlers(app)
    app.add_middleware(JsonBody)
    app.add_middleware(BodyLimitGuard, max_bytes=cfg.max_body_bytes, read_timeout=cfg.read_timeout)
    if api_key:  # a request without the key is refused before its body is read
        app.add_middleware(ApiKeyGuard, api_key=api_key)
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "x-api-key", "content-type"])
    # added last = outermost: a wrong Host or a foreign Origin is refused before anything else
    app.add_middleware(HostOriginGuard, hosts=cfg.host_names(), cors_origins=cfg.cors_origins)
    _add_routes(app, state)
    if api_key:
        _document_api_key(app)
    return app


def _add_routes(app: FastAPI, state: ServerState) -> None:
    models = request_models(state.config)
    SearchRequest, BatchSearchRequest, AskRequest = models.search, models.batch_search, models.ask  # noqa: N806
    service = state.service

    @app.get("/health", response_model=HealthResponse, response_model_exclude_unset=True, tags=["service"])
    async def health(request: Request) -> HealthResponse:
        """Liveness (no API key needed). What is loaded (index, rows, modes, model) is shown only when the
        server has no API key or the request carries it."""
        if not getattr(request.state, AUTHORIZED, True):
            return HealthResponse(status="ok")
        return HealthResponse(status="ok", version=__version__, index=PurePath(state.index_label).name,
                              rows=int(getattr(getattr(service.retriever, "corpus", None), "num_rows", 0)),
                              modes=service.modes, default_mode=service.default_mode,
                              llm=public_model_name(getattr(state.llm, "name", None)), ask=state.llm is not None,
                              searches=service.stats["queries"], search_batches=service.stats["batches"])

    @app.post("/search", response_model=SearchResponse, responses=ERROR_RESPONSES, tags=["retrieval"])
    async def search(body: SearchRequest) -> SearchResponse:  # type: ignore[valid-type]
        """Top-k chunks for one query (hybrid, bm25 or dense), with citation metadata."""
        (hits,) = await state.search([body.query], body.k, body.mode, _filters(body.filters))
        return SearchResponse(query=check_query(body.query), k=body.k, mode=body.mode or service.default_mode,
                              hits=hits_model(hits))

    @app.post("/batch_search", response_model=BatchSearchResponse, responses=ERROR_RESPONSES, tags=["retrieval"])
    async def batch_search(body: BatchSearchRequest) -> BatchSearchResponse:  # type: ignore[valid-type]
        """Top-k chunks for each of several queries (one batched search)."""
        results = await state.search(list(body.queries), body.k, body.mode, _filters(body.filters))
        return BatchSearchResponse(k=body.k, mode=body.mode or service.default_mode, results=[
            QueryHits(query=check_query(q), hits=hits_model(h)) for q, h in zip(body.queries, results, strict=True)])

    @app.post("/ask", response_model=AnswerModel, responses=ERROR_RESPONSES, tags=["reasoning"])
    async def ask(body: AskRequest) -> AnswerModel:  # type: ignore[valid-type]
        """A cited, evidence-checked answer (the follow-up reasoning loop). With a model not trusted to answer
        clinically (the offline default) the answer shows the retrieved evidence instead."""
        answer = await state.ask(_ask_params(body))
        return answer_model(answer, body.include_trace)

    @app.post("/ask/stream", responses={**ERROR_RESPONSES, 200: {
        "description": "Server-sent events named after the loop's progress (`round`, `queries`, `retrieved`, "
                       "`search`, `token`, `answers`, `retry` …; data: {kind, stage, round, text, items}), then "
                       "`answer` (an Answer) or `error` ({error: {code, message}}).",
        "content": {"text/event-stream": {"schema": _SSE_EVENT}}}}, tags=["reasoning"])
    async def ask_stream(body: AskRequest) -> StreamingResponse:  # type: ignore[valid-type]
        """Like /ask, streamed as server-sent events while the loop runs."""
        params = _ask_params(body)
        state.require_llm()
        trusted = bool(state.llm.profile.clinical_answers)
        return StreamingResponse(_sse(state, params, trusted, body.include_trace), media_type="text/event-stream")


#: one server-sent event: its name and its JSON data (a loop event, an Answer, or an error body)
_SSE_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string"}, "data": {"type": "string", "description": "JSON"}}}


def _ask_params(body: Any) -> AskParams:
    """Validated ask parameters (400 for a blank question, bad options or filters, before any work)."""
    options = normalize_options(body.options) if body.options else None
    return AskParams(question=check_query(body.question), options=options, mode=body.mode, rounds=body.rounds,
                     queries_per_round=body.queries_per_round, k=body.k, retrieval_mode=body.retrieval_mode,
                     filters=_filters(body.filters))


async def _sse(state: ServerState, params: AskParams, trusted: bool, include_trace: bool) -> AsyncIterator[str]:
    queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def on_event(event: Any) -> None:
        data = public_event(event, trusted)
        if data is not None:
            loop.call_soon_threadsafe(queue.put_nowait, (data["kind"], data))

    async def produce() -> None:
        try:
            answer = await state.ask(params, on_event)
            await queue.put(("answer", answer_model(answer, include_trace).model_dump()))
        except Exception as exc:  # after the 200 was sent, an error can only be reported in the stream
            status, code, message = describe_error(exc)
            if status == 500:
                log.error("ask stream failed", exc_info=exc)
            await queue.put(("error", {"error": {"code": code, "message": message}}))
        finally:
            await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not None:
            kind, data = item
            yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
    finally:
        task.cancel()


def public_model_name(name: str | None) -> str | None:
    """A backend name without its endpoint URL or file path: ``openai:http://h:8000/v1#m`` -> ``openai:m``,
    ``llamacpp:/models/x.gguf`` -> ``llamacpp:x.gguf``."""
    if not name or ":" not in name:
        return name
    backend, rest = name.split(":", 1)
    return f"{backend}:{rest.rsplit('#', 1)[1] if '#' in rest else PurePath(rest).name}"


def uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    """uvicorn settings that bound what a slow or idle client can hold: keep-alive timeout and the largest
    request head (the h11 parser enforces ``h11_max_incomplete_event_size``; httptools has no such limit);
    the body read timeout is BodyLimitGuard's."""
    return {"http": "h11", "timeout_keep_alive": config.keep_alive_timeout,
            "h11_max_incomplete_event_size": config.max_header_bytes,
            "limit_concurrency": config.max_pending, "timeout_graceful_shutdown": 5}


def _document_api_key(app: FastAPI) -> None:
    """Declare the API key in the OpenAPI schema (the check itself runs in ApiKeyGuard, before the body)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            for path, ops in schema.get("paths", {}).items():
                if path != "/health":
                    for op in ops.values():
                        op["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
