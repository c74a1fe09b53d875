"""LangChain integration: a medrag index as a ``langchain_core`` retriever.

>>> from medrag.integrations.langchain import MedragRetriever
>>> retriever = MedragRetriever(index="indexes/default", k=5)
>>> docs = retriever.invoke("first-line anticoagulant in atrial fibrillation")
>>> docs[0].metadata["pmid"], docs[0].id

Each ``Document`` holds a chunk's text as ``page_content``, the chunk id as ``id`` and the citation fields as
flat ``metadata`` (``chunk_id``, ``doc_id``, ``source``, ``title``, ``section``, ``rank``, ``score``, and
``pmid``/``doi``/``year``/``url``/… when known). ``filters`` is a medrag filter mapping
(``{"source": ["pubmed"], "year": [2015, None], "doc_ids": [...]}``) applied inside retrieval.
As a Runnable it composes into LCEL chains: ``retriever | format_docs | prompt | llm``.

The adapter itself never generates text. For answers with the honesty rules of ``medrag ask`` (citations
checked against the evidence; a model whose profile may not answer clinically — the packaged 270M default —
never has its text shown, the cited evidence and a note are returned instead) use :func:`ask_runnable`:

>>> from medrag.integrations.langchain import ask_runnable
>>> chain = ask_runnable(retriever, medrag.load_llm(None))
>>> chain.invoke("first-line anticoagulant in atrial fibrillation")["answered_by"]
'evidence'

Requires ``pip install 'medrag[langchain]'``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from ..errors import DependencyMissingError
from ..reason.api import ask
from ..retrieve.base import Filters
from ..types import Hit
from ._common import hit_metadata, retriever_lock

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda
    from pydantic import ConfigDict, Field, PrivateAttr, field_validator
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise DependencyMissingError("langchain-core", "langchain", "the LangChain integration") from exc

__all__ = ["MedragRetriever", "hit_to_document", "ask_runnable"]


def hit_to_document(hit: Hit) -> Document:
    """A medrag hit as a LangChain ``Document`` (id = chunk id, flat citation metadata)."""
    return Document(page_content=hit.text, metadata=hit_metadata(hit), id=hit.chunk_id)


class MedragRetriever(BaseRetriever):
    """A LangChain retriever over a medrag index.

    Give ``index`` (a directory, opened with ``medrag.load_index``; default ``indexes/default``) or an already
    loaded medrag ``retriever`` (shared, not copied). ``k`` documents per query; ``mode``: ``hybrid``,
    ``bm25`` or ``dense`` (``None``: hybrid for a directory, the retriever's own mode otherwise);
    ``filters``: a medrag filter mapping. Thread-safe; ``ainvoke`` searches on a worker thread.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    index: str | Path | None = Field(default=None, description="Index directory (default indexes/default).")
    retriever: Any = Field(default=None, description="An already loaded medrag retriever (instead of index).")
    k: int = Field(default=4, ge=1, description="Documents returned per query.")
    mode: Literal["hybrid", "bm25", "dense"] | None = Field(default=None, description="Search mode.")
    filters: dict[str, Any] | None = Field(default=None, description="medrag filters: source, year, doc_ids.")
    device: str = Field(default="cpu", description="cpu or cuda[:N] for the query encoder and FAISS.")

    _medrag: Any = PrivateAttr(default=None)
    _filters: Filters | None = PrivateAttr(default=None)

    @field_validator("filters")
    @classmethod
    def _check_filters(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        Filters.parse(value)  # QueryError (a ValueError) becomes a pydantic ValidationError
        return value

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        if self.retriever is not None and self.index is not None:
            raise ValueError("give either index or retriever, not both")
        self._filters = Filters.parse(self.filters)
        if self.retriever is None:
            from ..retrieve.load import load_index  # deferred: pyarrow (via medrag.retrieve.load)

            self._medrag = load_index(self.index or "indexes/default", mode=self.mode or "hybrid", device=self.device)
        elif self.mode is not None:
            self._medrag = self.retriever.with_options(mode=self.mode)
        else:
            self._medrag = self.retriever

    @property
    def medrag_retriever(self) -> Any:
        """The medrag retriever searched (a ``HybridRetriever`` for an index directory)."""
        return self._medrag

    def search(self, query: str) -> list[Hit]:
        """The medrag hits behind ``invoke(query)``."""
        with retriever_lock(self._medrag):
            return self._medrag.search(query, k=self.k, filters=self._filters)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [hit_to_document(h) for h in self.search(query)]

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        hits = await asyncio.to_thread(self.search, query)
        return [hit_to_document(h) for h in hits]


def ask_runnable(retriever: MedragRetriever, llm: Any, *, mode: str = "followup", **ask_options: Any) -> RunnableLambda:
    """A Runnable ``question -> answer dict`` running ``medrag.ask`` over ``retriever``'s index with a medrag
    LLM (``medrag.load_llm``): the dict is ``Answer.to_dict()`` without the trace (``answer``, ``answered_by``,
    ``citations`` with verbatim quotes, ``notes``, ``disclaimer`` …). An untrusted profile's text never
    appears in ``answer``: it is the cited evidence with a note, as in ``medrag ask``."""
    inner = retriever.medrag_retriever

    class _Locked:
        def search(self, query: str, k: int = 10, filters: Any = None) -> list[Hit]:
            with retriever_lock(inner):
                return inner.search(query, k=k, filters=filters)

        def batch_search(self, queries: Any, k: int = 10, filters: Any = None) -> list[list[Hit]]:
            with retriever_lock(inner):
                return inner.batch_search(list(queries), k=k, filters=filters)

    def run(question: str) -> dict[str, Any]:
        answer = ask(question, index=_Locked(), llm=llm, mode=mode, filters=retriever.filters, **ask_options)
        data = answer.to_dict()
        data.pop("trace", None)
        return data

    return RunnableLambda(run, name="medrag_ask")
