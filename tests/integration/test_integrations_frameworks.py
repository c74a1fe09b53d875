"""LlamaIndex and LangChain adapters over a real (small) hybrid index.

LLM side: the default tests use medrag's ``ScriptedLLM`` (a scripted model) — through the ``MedragLLM``
llama-index adapter, and through a ``RunnableLambda`` in the LangChain chain — so they record the exact prompt
each framework built. The ``slow``/``llm`` tests run the same pipelines on the packaged Gemma 3 270M model.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from medrag.errors import QueryError
from medrag.reason.testing import ScriptedLLM

AF_QUERY = "anticoagulant for atrial fibrillation with chronic kidney disease"


@pytest.fixture(scope="module")
def retriever(integrations_index: Path):
    from medrag import load_index

    return load_index(integrations_index)


# ------------------------------------------------------------------------------------------- llama-index


@pytest.fixture(scope="module")
def li():
    return pytest.importorskip("llama_index.core")


def test_llamaindex_nodes_carry_citation_metadata(li, retriever) -> None:
    from llama_index.core.schema import NodeWithScore, TextNode

    from medrag.integrations.llama_index import MedragRetriever

    nodes = MedragRetriever(retriever, k=3).retrieve(AF_QUERY)
    hits = retriever.search(AF_QUERY, k=3)
    assert [n.node.node_id for n in nodes] == [h.chunk_id for h in hits]
    assert all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    top = nodes[0]
    assert top.score == pytest.approx(hits[0].score)
    assert top.node.metadata["pmid"] == "31000001" and top.node.metadata["doi"] == "10.1000/af.ckd.2019"
    assert top.node.metadata["source"] == "pubmed" and top.node.metadata["year"] == 2019
    assert "apixaban" in top.node.get_content().lower()


def test_llamaindex_filters_apply_inside_retrieval(li, retriever) -> None:
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    from medrag.integrations.llama_index import MedragRetriever

    filters = MetadataFilters(filters=[
        MetadataFilter(key="source", value="guidelines", operator=FilterOperator.EQ),
        MetadataFilter(key="year", value=2021, operator=FilterOperator.GTE),
    ])
    nodes = MedragRetriever(retriever, k=10, filters=filters).retrieve(AF_QUERY)
    assert nodes, "guidelines from 2021 on mention atrial fibrillation"
    assert all(n.node.metadata["source"] == "guidelines" and n.node.metadata["year"] >= 2021 for n in nodes)
    assert {n.node.metadata["doc_id"] for n in nodes} >= {"guideline:af/anticoagulation"}


def test_llamaindex_async_retrieve_matches_sync(li, retriever) -> None:
    from medrag.integrations.llama_index import MedragRetriever

    r = MedragRetriever(retriever, k=4, mode="bm25")

    async def both() -> list:
        return await asyncio.gather(r.aretrieve("septic shock antibiotics"), r.aretrieve("metformin kidney"))

    sepsis, metformin = asyncio.run(both())
    assert [n.node.node_id for n in sepsis] == [n.node.node_id for n in r.retrieve("septic shock antibiotics")]
    assert [n.node.node_id for n in metformin] == [n.node.node_id for n in r.retrieve("metformin kidney")]
    assert {n.node.metadata["doc_id"] for n in metformin} >= {"pubmed:31000002", "guideline:diabetes/pharmacology"}


def test_llamaindex_query_engine_with_medrag_llm(li, retriever) -> None:
    from llama_index.core.query_engine import RetrieverQueryEngine

    from medrag.integrations.llama_index import MedragLLM, MedragRetriever

    # a profile trusted with clinical answers: its text is the response (untrusted ones: test_adapter_honesty)
    scripted = ScriptedLLM([(r"apixaban", "Apixaban, per the retrieved trial.")], profile="chat")
    engine = RetrieverQueryEngine.from_args(MedragRetriever(retriever, k=3), llm=MedragLLM(scripted, max_tokens=32))
    response = engine.query(AF_QUERY)
    assert str(response) == "Apixaban, per the retrieved trial."
    assert [n.node.node_id for n in response.source_nodes][0] == "pubmed:31000001#1"
    prompt = scripted.prompts[-1]
    assert "creatinine clearance between 25 and 30" in prompt and AF_QUERY in prompt
    assert "pmid: 31000001" in prompt and "chunk_id" not in prompt  # citation fields shown, ids hidden


def test_llamaindex_query_fusion_retriever_over_two_modes(li, retriever) -> None:
    from llama_index.core.retrievers import QueryFusionRetriever

    from medrag.integrations.llama_index import MedragLLM, MedragRetriever

    # the fusion retriever asks the LLM for num_queries - 1 extra queries (one per line)
    scripted = ScriptedLLM([(r"Generate .* search queries", "crystalloid fluids for sepsis hypoperfusion")],
                           profile="tiny-base")
    fusion = QueryFusionRetriever(
        [MedragRetriever(retriever, k=5, mode="bm25"), MedragRetriever(retriever, k=5, mode="dense")],
        # query generation is not an answer: the untrusted model's text is asked for explicitly
        llm=MedragLLM(scripted, untrusted_text=True), num_queries=2, mode="reciprocal_rerank", similarity_top_k=4,
        use_async=True,
    )
    nodes = fusion.retrieve("early antibiotics in septic shock")
    ids = [n.node.node_id for n in nodes]
    assert len(scripted.prompts) == 1 and "early antibiotics in septic shock" in scripted.prompts[0]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert {"pubmed:31000003#0", "guideline:sepsis/initial#0", "guideline:sepsis/initial#1"} <= set(ids)
    assert all("pmid" in n.node.metadata or n.node.metadata["source"] != "pubmed" for n in nodes)


def test_llamaindex_bad_query_is_a_medrag_error(li, retriever) -> None:
    from medrag.integrations.llama_index import MedragRetriever

    with pytest.raises(QueryError):
        MedragRetriever(retriever, k=0)
    with pytest.raises(QueryError, match="non-empty"):
        MedragRetriever(retriever).retrieve("   ")


@pytest.mark.slow
@pytest.mark.llm
def test_llamaindex_query_engine_with_packaged_model(li, integrations_index: Path) -> None:
    from llama_index.core.query_engine import RetrieverQueryEngine

    from medrag.integrations.llama_index import MedragLLM, MedragRetriever

    llm = MedragLLM.from_spec(None, max_tokens=12)
    try:
        engine = RetrieverQueryEngine.from_args(MedragRetriever.from_index(integrations_index, k=2), llm=llm)
        response = engine.query("Which antibiotic timing is recommended in septic shock?")
    finally:
        llm.medrag_llm.close()
    assert response.response.startswith("No answer was generated")  # the 270M model's text is never the answer
    assert len(response.source_nodes) == 2


# ---------------------------------------------------------------------------------------------- LangChain


@pytest.fixture(scope="module")
def lc():
    return pytest.importorskip("langchain_core")


def test_langchain_documents_and_filters(lc, retriever, integrations_index: Path) -> None:
    from langchain_core.documents import Document

    from medrag.integrations.langchain import MedragRetriever

    docs = MedragRetriever(retriever=retriever, k=3).invoke(AF_QUERY)
    assert all(isinstance(d, Document) for d in docs)
    assert docs[0].id == "pubmed:31000001#1" and docs[0].metadata["pmid"] == "31000001"
    assert docs[0].metadata["rank"] == 1 and "apixaban" in docs[0].page_content.lower()

    by_path = MedragRetriever(index=str(integrations_index), k=5, mode="bm25", filters={"source": ["textbooks"]})
    docs = by_path.invoke("warfarin INR monitoring")
    assert docs and all(d.metadata["source"] == "textbooks" for d in docs)
    assert docs[0].id == "textbook:pharmacology/anticoagulants#0"
    assert asyncio.run(by_path.ainvoke("warfarin INR monitoring")) == docs


def test_langchain_rejects_bad_settings(lc, retriever) -> None:
    from pydantic import ValidationError

    from medrag.integrations.langchain import MedragRetriever

    with pytest.raises(ValidationError):
        MedragRetriever(retriever=retriever, k=0)
    with pytest.raises(ValidationError, match="unknown filter"):
        MedragRetriever(retriever=retriever, filters={"journal": "x"})


def _lcel_chain(retriever, llm_fn):
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import PromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    def format_docs(docs) -> str:
        return "\n".join(f"[{d.metadata.get('pmid') or d.metadata['doc_id']}] {d.page_content}" for d in docs)

    prompt = PromptTemplate.from_template("Evidence:\n{context}\n\nQuestion: {question}\nAnswer:")
    return ({"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt | RunnableLambda(lambda p: llm_fn(p.to_string())) | StrOutputParser())


def test_langchain_lcel_chain_with_scripted_model(lc, retriever) -> None:
    from medrag.integrations.langchain import MedragRetriever
    from medrag.llm import GenerationParams

    scripted = ScriptedLLM([(r"Evidence:", "Within one hour [31000003].")], profile="tiny-base")
    chain = _lcel_chain(MedragRetriever(retriever=retriever, k=2),
                        lambda p: scripted.generate([p], GenerationParams(max_tokens=16))[0].text)
    assert chain.invoke("When should antibiotics be given in septic shock?") == "Within one hour [31000003]."
    prompt = scripted.prompts[-1]
    assert prompt.startswith("Evidence:\n[") and "Question: When should antibiotics" in prompt
    assert "septic shock" in prompt.split("Question:")[0]
    assert asyncio.run(chain.ainvoke("When should antibiotics be given in septic shock?")) == "Within one hour [31000003]."


@pytest.mark.slow
@pytest.mark.llm
def test_langchain_lcel_chain_with_packaged_model(lc, retriever) -> None:
    from medrag.integrations.langchain import MedragRetriever
    from medrag.llm import GenerationParams, load_llm

    llm = load_llm(None)
    try:
        chain = _lcel_chain(MedragRetriever(retriever=retriever, k=2),
                            lambda p: llm.generate([p], GenerationParams(max_tokens=12))[0].text)
        out = chain.invoke("When should antibiotics be given in septic shock?")
    finally:
        llm.close()
    assert isinstance(out, str) and out.strip()
