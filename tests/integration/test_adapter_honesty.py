"""Every surface keeps ``medrag ask``'s honesty rules: a model whose profile may not answer clinically (the
packaged 270M default's ``tiny-base``, ``chat-untrusted``) never has its text presented as an answer — not by
the LlamaIndex LLM or query engine, the LangChain runnable, HTTP ``/ask`` (plain and streamed) or MCP ``ask``.
The scripted model always writes the same confident, wrong dose; no answer may contain it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from medrag.reason.answer import UNTRUSTED_LEAD
from medrag.reason.testing import ScriptedLLM

DOSE = "Enoxaparin 1.5 mg/kg subcutaneously once daily"
QUESTION = "Which anticoagulant is recommended for atrial fibrillation with chronic kidney disease?"
LEAD = UNTRUSTED_LEAD.split("(")[0]  # "No answer was generated: the model in use "


def _untrusted(profile: str = "tiny-base") -> ScriptedLLM:
    return ScriptedLLM([(r".*", f"Answer: {DOSE}.")], profile=profile, name="tiny-dose")


@pytest.fixture(scope="module")
def retriever(integrations_index: Path):
    from medrag import load_index

    return load_index(integrations_index, mode="bm25")


def _assert_evidence_answer(text: str, answered_by: str | None = None) -> None:
    assert DOSE not in text and "mg/kg" not in text
    assert text.startswith(LEAD)
    if answered_by is not None:
        assert answered_by == "evidence"


def test_llamaindex_llm_withholds_untrusted_text(retriever) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.query_engine import RetrieverQueryEngine

    from medrag.integrations.llama_index import MedragLLM, MedragRetriever

    for profile in ("tiny-base", "chat-untrusted"):
        scripted = _untrusted(profile)
        llm = MedragLLM(scripted)
        engine = RetrieverQueryEngine.from_args(MedragRetriever(retriever, k=3), llm=llm)
        response = engine.query(QUESTION)
        _assert_evidence_answer(str(response))
        assert "tiny-dose" in str(response) and response.source_nodes  # the evidence stays available
        assert scripted.prompts == []  # nothing is generated that could never be shown
        assert DOSE not in llm.chat([ChatMessage(role="user", content=QUESTION)]).message.content
        assert DOSE not in "".join(r.delta or "" for r in llm.stream_complete(QUESTION))
        assert llm.complete(QUESTION).raw["withheld"] is True
    opted_in = MedragLLM(_untrusted(), untrusted_text=True)  # explicit, for non-answer uses
    assert DOSE in opted_in.complete("rewrite this query").text
    trusted = MedragLLM(ScriptedLLM([(r".*", "Apixaban [E1].")], profile="chat"))
    assert trusted.complete(QUESTION).text == "Apixaban [E1]."


def test_llamaindex_query_engine_answers_like_ask(retriever) -> None:
    pytest.importorskip("llama_index.core")
    from medrag.integrations.llama_index import MedragLLM, MedragQueryEngine, MedragRetriever

    engine = MedragQueryEngine(MedragRetriever(retriever, k=3), MedragLLM(_untrusted()), mode="rag")
    response = engine.query(QUESTION)
    _assert_evidence_answer(str(response), response.metadata["answered_by"])
    assert response.source_nodes and all(n.node.metadata["quote"] for n in response.source_nodes)
    assert all(n.node.metadata["quote"] in n.node.text for n in response.source_nodes)


def test_langchain_runnable_answers_like_ask(retriever) -> None:
    pytest.importorskip("langchain_core")
    from medrag.integrations.langchain import MedragRetriever, ask_runnable

    chain = ask_runnable(MedragRetriever(retriever=retriever, k=3), _untrusted(), mode="followup", rounds=1)
    out = chain.invoke(QUESTION)
    _assert_evidence_answer(out["answer"], out["answered_by"])
    assert out["citations"] and "trace" not in out
    assert json.dumps(out).count(DOSE) == 0


def test_http_ask_and_stream_withhold_untrusted_text(retriever) -> None:
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from medrag.config import ServeConfig
    from medrag.integrations.server import create_app

    app = create_app(retriever, _untrusted(), ServeConfig(), api_key=None)
    transport = httpx.ASGITransport(app=app)

    async def calls() -> tuple[list[dict[str, Any]], str]:
        bodies = []
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                                                       timeout=60) as client:
            for mode in ("followup", "rag", "search-tags"):
                r = await client.post("/ask", json={"question": QUESTION, "mode": mode, "rounds": 1})
                assert r.status_code == 200, r.text
                bodies.append(r.json())
            r = await client.post("/ask/stream", json={"question": QUESTION, "mode": "rag"})
            return bodies, r.text

    bodies, raw = asyncio.run(calls())
    for body in bodies:
        _assert_evidence_answer(body["answer"], body["answered_by"])
        assert body["reasoning"] == ""
    assert "event: answer" in raw and DOSE not in raw


def test_mcp_ask_withholds_untrusted_text(retriever) -> None:
    mcp = pytest.importorskip("mcp")
    from medrag.integrations.mcp_server import build_mcp_server

    server = build_mcp_server(retriever, _untrusted())

    async def call() -> Any:
        async with mcp.Client(server) as c:
            return await c.call_tool("ask", {"question": QUESTION, "mode": "rag", "k": 3})

    try:
        result = asyncio.run(call())
    finally:
        server.medrag_service.close()
    data = getattr(result, "structured_content", None) or json.loads(result.content[0].text)
    _assert_evidence_answer(data["answer"], data["answered_by"])
    assert DOSE not in json.dumps(data)
