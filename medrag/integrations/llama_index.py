"""LlamaIndex integration: a medrag index as a llama-index retriever, and medrag LLMs as llama-index LLMs.

>>> from llama_index.core.query_engine import RetrieverQueryEngine
>>> from medrag.integrations.llama_index import MedragLLM, MedragRetriever
>>> retriever = MedragRetriever.from_index("indexes/default", k=8)
>>> engine = RetrieverQueryEngine.from_args(retriever, llm=MedragLLM.from_spec("openai:http://127.0.0.1:8000/v1#m"))
>>> from medrag.integrations.llama_index import MedragQueryEngine
>>> cited = MedragQueryEngine(retriever, MedragLLM.from_spec(None))  # medrag's own loop: checked citations

Honesty, as in ``medrag ask``: a model whose profile may not answer clinically (``clinical_answers=False``,
e.g. the packaged 270M default) never has its text presented as an answer. ``MedragLLM`` returns a note saying
so instead of generating (``raw["withheld"]`` is True; the retrieved passages are the response's source
nodes); ``MedragQueryEngine`` runs medrag's reasoning loop and answers with the cited evidence and that note.

``MedragRetriever`` returns ``NodeWithScore`` objects whose ``TextNode`` id is the medrag chunk id and whose
metadata carries the citation fields (``pmid``, ``doi``, ``source``, ``title``, ``section``, ``year``,
``url`` …; see :func:`medrag.integrations._common.hit_metadata`). Filters are llama-index
``MetadataFilters`` (or a medrag filter mapping) and are applied *inside* retrieval, before the top-k cut:

* ``source``: ``==`` / ``in``;  ``doc_id``: ``==`` / ``in``;  ``year``: ``==``, ``>``, ``>=``, ``<``, ``<=``;
* conditions are combined with AND (nested AND groups are flattened). Anything else raises ``QueryError``.

Requires ``pip install 'medrag[llamaindex]'``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DependencyMissingError, QueryError
from ..llm import GenerationParams, load_llm
from ..reason.answer import UNTRUSTED_LEAD
from ..reason.api import ask
from ..retrieve.base import Filters, Retriever, check_k
from ..types import Hit
from ._common import hit_metadata, retriever_lock

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.llms.generic_utils import completion_response_to_chat_response
    from llama_index.core.base.llms.types import (
        ChatMessage,
        ChatResponse,
        CompletionResponse,
        CompletionResponseGen,
        LLMMetadata,
    )
    from llama_index.core.base.response.schema import Response
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
    from llama_index.core.llms.custom import CustomLLM
    from llama_index.core.query_engine import CustomQueryEngine
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.core.vector_stores.types import (
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
    )
    from pydantic import Field, PrivateAttr
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise DependencyMissingError("llama-index-core", "llamaindex", "the LlamaIndex integration") from exc

__all__ = ["MedragRetriever", "MedragLLM", "MedragQueryEngine", "medrag_filters", "hit_to_node", "withheld_note"]

#: metadata keys kept out of the text an LLM sees (ids and scores are for code, not for the prompt)
_HIDDEN_FROM_LLM = ["chunk_id", "doc_id", "url", "license", "pmcid", "mesh", "publication_types"]
_YEAR_OPS = (FilterOperator.EQ, FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE)
_SET_OPS = (FilterOperator.EQ, FilterOperator.IN)


# ------------------------------------------------------------------------------------------------ filters


def medrag_filters(filters: MetadataFilters | Filters | Mapping[str, Any] | None) -> Filters | None:
    """llama-index ``MetadataFilters`` (or a medrag filter mapping) as medrag :class:`Filters`."""
    if filters is None or isinstance(filters, (Filters, Mapping)):
        return Filters.parse(filters)
    if not isinstance(filters, MetadataFilters):
        raise QueryError(f"filters must be llama-index MetadataFilters or a mapping, got {type(filters).__name__}")
    sets: dict[str, set[str] | None] = {"source": None, "doc_ids": None}
    low: int | None = None
    high: int | None = None
    for f in _flatten(filters):
        key = "doc_ids" if f.key in ("doc_id", "doc_ids") else f.key
        if key in sets:
            values = _string_values(f)
            sets[key] = values if sets[key] is None else sets[key] & values  # type: ignore[operator]
        elif key == "year":
            lo, hi = _year_bounds(f)
            low = lo if low is None or (lo is not None and lo > low) else low
            high = hi if high is None or (hi is not None and hi < high) else high
        else:
            raise QueryError(f"cannot filter on metadata key {f.key!r}; supported: source, year, doc_id")
    year = None if low is None and high is None else (low, high)
    return Filters(
        source=None if sets["source"] is None else tuple(sorted(sets["source"])),
        year=year,
        doc_ids=None if sets["doc_ids"] is None else tuple(sorted(sets["doc_ids"])),
    )


def _flatten(filters: MetadataFilters) -> list[MetadataFilter]:
    condition = filters.condition or FilterCondition.AND
    if condition != FilterCondition.AND and len(filters.filters) > 1:
        raise QueryError(f"medrag filters combine conditions with AND only, got {condition.value!r}")
    out: list[MetadataFilter] = []
    for f in filters.filters:
        out.extend(_flatten(f) if isinstance(f, MetadataFilters) else [f])
    return out


def _string_values(f: MetadataFilter) -> set[str]:
    if f.operator not in _SET_OPS:
        raise QueryError(f"filter on {f.key!r} supports == and in, got {f.operator.value!r}")
    values = f.value if isinstance(f.value, list) else [f.value]
    if f.operator == FilterOperator.EQ and isinstance(f.value, list):
        raise QueryError(f"filter {f.key!r} ==: give one value (use 'in' for a list)")
    if not all(isinstance(v, str) for v in values):
        raise QueryError(f"filter {f.key!r} values must be strings")
    return set(values)  # type: ignore[arg-type]


def _year_bounds(f: MetadataFilter) -> tuple[int | None, int | None]:
    if f.operator not in _YEAR_OPS:
        raise QueryError(f"filter on 'year' supports ==, >, >=, <, <=, got {f.operator.value!r}")
    value = f.value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise QueryError(f"filter 'year' needs an integer year, got {f.value!r}")
    return {
        FilterOperator.EQ: (value, value), FilterOperator.GT: (value + 1, None), FilterOperator.GTE: (value, None),
        FilterOperator.LT: (None, value - 1), FilterOperator.LTE: (None, value),
    }[f.operator]


# ---------------------------------------------------------------------------------------------- retriever


def hit_to_node(hit: Hit) -> NodeWithScore:
    """A medrag hit as a scored ``TextNode`` (id = chunk id; citation metadata; ids hidden from the LLM).

    The node's metadata holds no per-search values (rank, score): the same chunk found by two retrievers or
    two queries is the same node (llama-index's fusion retrievers de-duplicate by node hash)."""
    meta = {k: v for k, v in hit_metadata(hit).items() if k not in ("rank", "score")}
    node = TextNode(
        id_=hit.chunk_id, text=hit.text, metadata=meta,
        excluded_llm_metadata_keys=list(_HIDDEN_FROM_LLM), excluded_embed_metadata_keys=list(_HIDDEN_FROM_LLM),
    )
    return NodeWithScore(node=node, score=float(hit.score))


class MedragRetriever(BaseRetriever):
    """A llama-index retriever over any medrag retriever (usually a loaded index).

    ``k`` nodes per query; ``filters``: ``MetadataFilters`` or a medrag filter mapping; ``mode``: search mode
    for a ``HybridRetriever`` (``hybrid``, ``bm25``, ``dense``; ``None`` = the retriever's own). Safe to call
    from several threads and from ``asyncio`` (``aretrieve`` searches on a worker thread).
    """

    def __init__(self, retriever: Retriever, *, k: int = 8,
                 filters: MetadataFilters | Filters | Mapping[str, Any] | None = None, mode: str | None = None,
                 callback_manager: CallbackManager | None = None, verbose: bool = False) -> None:
        if mode is not None:
            with_options = getattr(retriever, "with_options", None)
            if with_options is None:
                raise QueryError(f"mode= needs a HybridRetriever, got {type(retriever).__name__}")
            retriever = with_options(mode=mode)
        self.medrag_retriever = retriever
        self.k = check_k(k)
        self.filters = medrag_filters(filters)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_index(cls, path: str | Path = "indexes/default", *, k: int = 8, mode: str = "hybrid",
                   filters: MetadataFilters | Filters | Mapping[str, Any] | None = None, device: str = "cpu",
                   **kwargs: Any) -> MedragRetriever:
        """Open the index at ``path`` (``medrag.load_index``) and wrap it."""
        from ..retrieve.load import load_index  # deferred: pyarrow (via medrag.retrieve.load)

        return cls(load_index(path, mode=mode, device=device), k=k, filters=filters, **kwargs)

    def search(self, query: str) -> list[Hit]:
        """The medrag hits behind ``retrieve(query)``."""
        with retriever_lock(self.medrag_retriever):
            return self.medrag_retriever.search(query, k=self.k, filters=self.filters)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [hit_to_node(h) for h in self.search(query_bundle.query_str)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


# ---------------------------------------------------------------------------------------------------- LLM


def withheld_note(llm: Any) -> str:
    """What an adapter says instead of an untrusted model's text (``medrag ask``'s lead, same words)."""
    return UNTRUSTED_LEAD.format(model=llm.name, profile=llm.profile.name)


class MedragLLM(CustomLLM):
    """Any medrag LLM (``medrag.llm.load_llm(spec)``: the packaged model, llama.cpp, OpenAI-compatible,
    vLLM) as a llama-index LLM. Chat prompts go to the backend as chat messages when the model's profile is a
    chat profile; completion models get llama-index's rendered prompt text.

    When the profile may not answer clinically (``clinical_answers=False``) nothing is generated: every call
    returns :func:`withheld_note` (``raw={"withheld": True}``), so a query engine never shows the model's text
    as an answer. ``untrusted_text=True`` returns the text anyway — only for uses whose output is never shown
    as an answer (query rewriting, HyDE passages)."""

    max_tokens: int = Field(default=256, ge=1, description="Tokens generated per call.")
    temperature: float = Field(default=0.0, ge=0.0, description="Sampling temperature (0 = greedy).")
    context_window: int = Field(default=4096, ge=256, description="Context size llama-index plans prompts for.")
    untrusted_text: bool = Field(default=False, description="Return an untrusted profile's text (not as answers).")
    _llm: Any = PrivateAttr()

    def __init__(self, llm: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._llm = llm

    @classmethod
    def from_spec(cls, spec: str | None = None, *, profile: str | None = None, **kwargs: Any) -> MedragLLM:
        """Load ``spec`` with ``medrag.llm.load_llm`` (``None`` = the packaged offline model)."""
        return cls(load_llm(spec, profile=profile), **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "medrag_llm"

    @property
    def medrag_llm(self) -> Any:
        return self._llm

    @property
    def withheld(self) -> bool:
        """True when this model's text is never returned (untrusted profile, ``untrusted_text`` off)."""
        return not (self._llm.profile.clinical_answers or self.untrusted_text)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.max_tokens,
                           is_chat_model=self._llm.profile.prompt_style == "chat", model_name=self._llm.name)

    def _params(self, kwargs: Mapping[str, Any]) -> Any:
        stop = kwargs.get("stop") or ()
        return GenerationParams(max_tokens=int(kwargs.get("max_tokens", self.max_tokens)),
                                temperature=float(kwargs.get("temperature", self.temperature)),
                                stop=tuple([stop] if isinstance(stop, str) else stop))

    def _withheld_response(self) -> CompletionResponse:
        note = withheld_note(self._llm)
        return CompletionResponse(text=note, delta=note, raw={"withheld": True, "profile": self._llm.profile.name})

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self.withheld:
            return self._withheld_response()
        gen = self._llm.generate([prompt], self._params(kwargs))[0]
        return CompletionResponse(text=gen.text, raw={"finish_reason": gen.finish_reason})

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        params = self._params(kwargs)

        def pieces() -> CompletionResponseGen:
            if self.withheld:
                yield self._withheld_response()
                return
            text = ""
            for piece in self._llm.stream(prompt, params):
                text += piece
                yield CompletionResponse(text=text, delta=piece)

        return pieces()

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self._llm.profile.prompt_style != "chat" or self.withheld:
            prompt = "" if self.withheld else self.messages_to_prompt(messages)  # type: ignore[misc]  # typed Optional; always set
            return completion_response_to_chat_response(self.complete(prompt, formatted=True, **kwargs))
        chat = [{"role": _role(m), "content": m.content or ""} for m in messages]
        gen = self._llm.generate([chat], self._params(kwargs))[0]
        return ChatResponse(message=ChatMessage(role="assistant", content=gen.text),
                            raw={"finish_reason": gen.finish_reason})


class MedragQueryEngine(CustomQueryEngine):
    """A llama-index query engine that answers like ``medrag ask``: medrag's reasoning loop over the
    retriever's index, citations checked against the evidence, and — for a model that may not answer
    clinically, or an answer that fails grounding — the cited evidence with a note instead of model text.

    The response's ``source_nodes`` are the cited chunks (quote in ``metadata["quote"]``); its ``metadata``
    holds ``answered_by`` (``model``, ``evidence`` or ``none``), ``option``, ``notes`` and ``disclaimer``.
    ``mode``: ``followup`` | ``rag`` | ``search-tags``; ``ask_options``: extra ``medrag.ask`` keywords."""

    retriever: MedragRetriever
    llm: MedragLLM
    mode: str = "followup"
    ask_options: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, retriever: MedragRetriever, llm: MedragLLM, **kwargs: Any) -> None:
        super().__init__(retriever=retriever, llm=llm, **kwargs)  # type: ignore[call-arg]  # pydantic fields

    def custom_query(self, query_str: str) -> Response:
        searched = _RecordingRetriever(self.retriever)
        answer = ask(query_str, index=searched, llm=self.llm.medrag_llm, mode=self.mode,
                     filters=self.retriever.filters, **self.ask_options)
        nodes = []
        for c in answer.citations:
            hit = searched.seen.get(c.chunk_id)
            if hit is not None:
                node = hit_to_node(hit)
                node.node.metadata["quote"] = c.quote
                nodes.append(node)
        return Response(response=answer.answer, source_nodes=nodes, metadata={
            "answered_by": answer.answered_by, "option": answer.option, "notes": list(answer.notes),
            "insufficient_evidence": answer.insufficient_evidence, "disclaimer": answer.disclaimer})


class _RecordingRetriever:
    """The medrag retriever behind a ``MedragRetriever``, searched under its lock; remembers every hit it
    returned (``seen``: chunk id -> hit) so cited chunks become source nodes."""

    def __init__(self, wrapper: MedragRetriever) -> None:
        self._inner = wrapper.medrag_retriever
        self.seen: dict[str, Hit] = {}

    def search(self, query: str, k: int = 10, filters: Any = None) -> list[Hit]:
        return self.batch_search([query], k=k, filters=filters)[0]

    def batch_search(self, queries: Sequence[str], k: int = 10, filters: Any = None) -> list[list[Hit]]:
        with retriever_lock(self._inner):
            results = self._inner.batch_search(list(queries), k=k, filters=filters)
        for hits in results:
            self.seen.update((h.chunk_id, h) for h in hits)
        return results


def _role(message: ChatMessage) -> str:
    role = str(getattr(message.role, "value", message.role))
    return role if role in ("system", "user", "assistant") else "user"
