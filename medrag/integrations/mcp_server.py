"""An MCP tool server exposing medrag's ``search`` and ``ask`` (``medrag mcp``, stdio transport).

Tools return structured results (an MCP ``structuredContent`` object with an output schema, plus the same
JSON as text): ``search`` → ``{query, k, mode, hits: [...]}`` (hits as in ``Hit.to_dict()``), ``ask`` → an
Answer (``Answer.to_dict()``). Bad arguments come back as tool errors (``isError``) with a one-line message.
``ask`` is offered only when an LLM is loaded. Built on the official ``mcp`` SDK (>= 2, ``MCPServer``).
Requires ``pip install 'medrag[mcp]'``.
"""

# no ``from __future__ import annotations``: the MCP SDK reads the tool signatures at runtime

import asyncio
import logging
import threading
from typing import Annotated, Any

from pydantic import Field

from ..config import ServeConfig
from ..errors import ContextOverflowError, DependencyMissingError, LLMError, MedragError
from ..reason.runner import normalize_options
from ..retrieve.base import Filters, Retriever
from .schemas import (
    AnswerModel,
    AskMode,
    SearchMode,
    SearchResponse,
    answer_model,
    hits_model,
    request_models,
    validation_message,
)
from .service import AskParams, SearchService, run_ask

__all__ = ["build_mcp_server", "run_stdio"]

log = logging.getLogger(__name__)

_INSTRUCTIONS = (
    "medrag searches a medical literature index (PubMed abstracts, PMC articles, clinical guidelines, textbooks) "
    "and answers questions with verbatim, checkable citations. Use `search` to find evidence passages (each hit "
    "has PMID/DOI/source/title/year when known); use `ask` for a cited answer. Results are evidence, not medical "
    "advice."
)


def _sdk() -> tuple[Any, type[Exception]]:
    """medrag's server class (the SDK's ``MCPServer`` with one-line argument errors) and the SDK's ToolError."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError as exc:
        raise DependencyMissingError("mcp>=2", "mcp", "the MCP server") from exc
    from pydantic import ValidationError

    class OneLineErrorServer(MCPServer):  # type: ignore[misc, valid-type]
        """Tool errors are one line: the SDK reports arguments that fail the input schema as pydantic's
        multi-line dump; this names the first bad field and its message instead (like the HTTP service)."""

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:
                cause = exc.__cause__
                if isinstance(cause, ValidationError):
                    raise ToolError(f"Error executing tool {name}: {validation_message(cause.errors())}") from cause
                raise

    return OneLineErrorServer, ToolError


def build_mcp_server(retriever: Retriever | SearchService, llm: Any = None, config: ServeConfig | None = None) -> Any:
    """An MCP server (not yet running) with the ``search`` tool, and ``ask`` when ``llm`` is given.

    The search service is started here; ``run_stdio`` closes it when the server stops.
    """
    cfg = config or ServeConfig()
    server_cls, tool_error = _sdk()
    service = retriever if isinstance(retriever, SearchService) else SearchService(
        retriever, batch_queries=cfg.batch_queries, max_pending=cfg.max_pending)
    service.start()
    server = server_cls(name="medrag", instructions=_INSTRUCTIONS, log_level="WARNING")
    server.medrag_service = service
    filters_model = request_models(cfg).filters
    k_type = Annotated[int, Field(ge=1, le=cfg.max_k, description=f"Number of passages (1..{cfg.max_k}).")]

    def failed(exc: MedragError) -> Exception:
        return tool_error(public_message(exc))

    async def search(
        query: Annotated[str, Field(min_length=1, max_length=cfg.max_query_chars, description="What to search for.")],
        k: k_type = cfg.default_k,
        mode: Annotated[SearchMode | None, Field(description="hybrid (default), bm25 or dense.")] = None,
        filters: Annotated[filters_model | None, Field(  # type: ignore[valid-type]
            description="Optional: {source: [...], year: [low, high], doc_ids: [...]}.")] = None,
    ) -> SearchResponse:
        """Search the medical index; returns ranked passages with citation metadata (PMID, DOI, source,
        title, section, year, URL)."""
        try:
            parsed = None if filters is None else Filters.parse(filters.model_dump(exclude_none=True))
            future = service.submit([query], k, mode, parsed)
            (hits,) = await asyncio.wait_for(asyncio.wrap_future(future), cfg.search_timeout)
        except MedragError as exc:
            raise failed(exc) from exc
        except asyncio.TimeoutError as exc:
            raise tool_error(f"search took longer than {cfg.search_timeout:g}s") from exc
        return SearchResponse(query=query.strip(), k=k, mode=mode or service.default_mode, hits=hits_model(hits))

    server.add_tool(search, name="search", title="Search medical literature")
    if llm is not None:
        server.add_tool(_ask_tool(service, llm, cfg, filters_model, k_type, tool_error, failed), name="ask",
                        title="Answer a medical question with citations")
    return server


def _ask_tool(service: SearchService, llm: Any, cfg: ServeConfig, filters_model: Any, k_type: Any,
              tool_error: type[Exception], failed: Any) -> Any:
    async def ask(
        question: Annotated[str, Field(min_length=1, max_length=cfg.max_question_chars,
                                       description="The medical question.")],
        options: Annotated[dict[str, str] | None, Field(
            description='Multiple-choice options, e.g. {"A": "apixaban", "B": "warfarin"}.')] = None,
        mode: Annotated[AskMode, Field(description="followup (iterative follow-up queries), rag (single pass), "
                                                   "search-tags.")] = "followup",
        rounds: Annotated[int, Field(ge=1, le=cfg.max_rounds, description="Follow-up rounds.")] = 4,
        k: Annotated[k_type | None, Field(description="Passages retrieved per query (default 4).")] = None,
        filters: Annotated[filters_model | None, Field(  # type: ignore[valid-type]
            description="Optional: {source: [...], year: [low, high], doc_ids: [...]}.")] = None,
    ) -> AnswerModel:
        """Answer a medical question from the index with verbatim citations that are checked against the
        retrieved evidence. When the loaded model is not trusted to answer clinically (the offline default) or
        its answer is not supported, the answer shows the most relevant cited evidence instead
        (`answered_by` says which). Not medical advice."""
        cancel = threading.Event()
        try:
            params = AskParams(question=question, options=normalize_options(options) if options else None,
                               mode=mode, rounds=rounds, k=k,
                               filters=None if filters is None else Filters.parse(filters.model_dump(exclude_none=True)))
            run = asyncio.to_thread(run_ask, service, llm, params, cancel=cancel)
            answer = await asyncio.wait_for(run, cfg.ask_timeout)
        except MedragError as exc:
            raise failed(exc) from exc
        except asyncio.TimeoutError as exc:
            raise tool_error(f"ask took longer than {cfg.ask_timeout:g}s") from exc
        finally:
            cancel.set()
        return answer_model(answer, include_trace=False)

    return ask


def public_message(exc: MedragError) -> str:
    """One line for a tool error; an LLM backend's failure names no URL or errno (those go to the log)."""
    if isinstance(exc, ContextOverflowError):
        return exc.public_message()
    if isinstance(exc, LLMError):
        log.error("LLM backend failed: %s", exc)
        return "the language model backend failed (details are in the server log)"
    return " ".join(str(exc).split())


def run_stdio(server: Any) -> None:
    """Serve ``server`` over stdin/stdout until the client disconnects; then stop its search service."""
    service = getattr(server, "medrag_service", None)
    try:
        if service is not None:
            service.warm_up()
        server.run("stdio")
    finally:
        if service is not None:
            service.close()
