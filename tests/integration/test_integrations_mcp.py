"""The MCP server: a real MCP client over stdio against a ``medrag mcp`` subprocess, and in-process asks."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

mcp = pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

from medrag.reason.testing import ScriptedLLM  # noqa: E402


def _structured(result: Any) -> dict[str, Any]:
    data = getattr(result, "structured_content", None)
    if data is None:
        data = getattr(result, "structuredContent", None)
    return data if data is not None else json.loads(result.content[0].text)


def _is_error(result: Any) -> bool:
    return bool(getattr(result, "is_error", getattr(result, "isError", False)))


def test_stdio_server_lists_tools_and_searches(integrations_index: Path) -> None:
    """``medrag mcp`` (BM25 mode, the packaged offline LLM) driven by the SDK's stdio client."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "medrag.cli", "mcp", "--index", str(integrations_index), "--mode", "bm25"],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )

    async def session() -> tuple[Any, Any, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await asyncio.wait_for(s.initialize(), 120)
            tools = await s.list_tools()
            found = await s.call_tool("search", {"query": "antibiotics in septic shock", "k": 3,
                                                 "filters": {"source": ["pubmed", "guidelines"]}})
            bad = await s.call_tool("search", {"query": "sepsis", "k": 0})
            return tools, found, bad

    tools, found, bad = asyncio.run(session())
    by_name = {t.name: t for t in tools.tools}
    assert set(by_name) == {"search", "ask"}
    schema = getattr(by_name["search"], "input_schema", None) or by_name["search"].inputSchema
    assert {"query", "k", "mode", "filters"} <= set(schema["properties"]) and schema["required"] == ["query"]
    assert not _is_error(found)
    result = _structured(found)
    assert result["mode"] == "bm25" and 2 <= len(result["hits"]) <= 3  # BM25 returns only matching chunks
    top = result["hits"][0]
    assert top["chunk_id"] == "pubmed:31000003#0" and top["metadata"]["pmid"] == "31000003"
    assert {h["source"] for h in result["hits"]} <= {"pubmed", "guidelines"}
    assert _is_error(bad) and "greater than or equal to 1" in bad.content[0].text


def test_in_process_ask_and_tool_errors(integrations_index: Path) -> None:
    client_cls = mcp.Client  # the SDK's client; given a server object it connects in-process
    from medrag import load_index
    from medrag.integrations.mcp_server import build_mcp_server

    server = build_mcp_server(load_index(integrations_index, mode="bm25"),
                              ScriptedLLM([(r".*", "ENOUGH")], profile="chat"))

    async def calls() -> tuple[Any, Any, Any]:
        async with client_cls(server) as c:
            answer = await c.call_tool("ask", {"question": "When should antibiotics be given in septic shock?",
                                               "mode": "rag", "k": 3})
            empty_range = await c.call_tool("search", {"query": "sepsis", "filters": {"year": [2022, 2001]}})
            bad_options = await c.call_tool("ask", {"question": "q?", "options": {"AB": "x"}})
            return answer, empty_range, bad_options

    try:
        answer, empty_range, bad_options = asyncio.run(calls())
    finally:
        server.medrag_service.close()
    body = _structured(answer)
    assert not _is_error(answer) and body["answered_by"] in ("model", "evidence", "none")
    assert body["citations"] and body["citations"][0]["chunk_id"] in {"pubmed:31000003#0", "guideline:sepsis/initial#0"}
    assert _is_error(empty_range) and "range is empty" in empty_range.content[0].text
    assert _is_error(bad_options) and "single letters" in bad_options.content[0].text


def test_no_llm_offers_search_only(integrations_index: Path) -> None:
    client_cls = mcp.Client  # the SDK's client; given a server object it connects in-process
    from medrag import load_index
    from medrag.integrations.mcp_server import build_mcp_server

    server = build_mcp_server(load_index(integrations_index, mode="bm25"), None)

    async def names() -> list[str]:
        async with client_cls(server) as c:
            return [t.name for t in (await c.list_tools()).tools]

    try:
        assert asyncio.run(names()) == ["search"]
    finally:
        server.medrag_service.close()


def test_tool_errors_are_one_line(integrations_index: Path) -> None:
    """Arguments failing the input schema, invalid text and backend failures come back as one line each, with
    no pydantic dump and no upstream URL or errno."""
    from medrag import load_index
    from medrag.errors import BackendUnavailableError
    from medrag.integrations.mcp_server import build_mcp_server

    def down(text: str, n: int) -> str:
        raise BackendUnavailableError("http://10.9.8.7:8000/v1/chat/completions: cannot connect: [Errno 111] refused")

    server = build_mcp_server(load_index(integrations_index, mode="bm25"), ScriptedLLM([(r".*", down)]))
    bad_args = [
        ("search", {"query": "sepsis", "k": 0}),
        ("search", {"query": "", "k": 500, "mode": "fuzzy"}),
        ("search", {"query": "gout \ud800 flare"}),
        ("search", {"query": "sepsis", "filters": {"color": ["red"]}}),
        ("ask", {"question": "q?", "rounds": 99}),
        ("ask", {"question": "When should antibiotics be given in septic shock?", "mode": "rag"}),
    ]

    async def calls() -> list[Any]:
        async with mcp.Client(server) as c:
            return [await c.call_tool(name, args) for name, args in bad_args]

    try:
        results = asyncio.run(calls())
    finally:
        server.medrag_service.close()
    for (name, args), result in zip(bad_args, results, strict=True):
        text = result.content[0].text
        assert _is_error(result), (name, args)
        assert "\n" not in text and "validation error" not in text and "For further information" not in text, text
        assert "10.9.8.7" not in text and "Errno" not in text, text
    assert "k: Input should be greater than or equal to 1" in results[0].content[0].text
    assert "(and 2 more)" in results[1].content[0].text
    assert "server log" in results[-1].content[0].text
