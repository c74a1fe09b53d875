"""Request and response models of the HTTP service and the MCP tools (pydantic).

Responses mirror ``Hit.to_dict()`` and ``Answer.to_dict()``. Requests carry the limits of a
:class:`~medrag.config.ServeConfig`, so they are built per configuration by :func:`request_models` and the
OpenAPI schema states the limits the server enforces.
"""

# no ``from __future__ import annotations``: FastAPI and the MCP SDK read these annotations at runtime

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config import ServeConfig
from ..types import Answer, Hit

__all__ = [
    "MetadataModel", "HitModel", "SearchResponse", "QueryHits", "BatchSearchResponse", "CitationModel",
    "AnswerModel", "ErrorDetail", "ErrorResponse", "HealthResponse", "RequestModels", "request_models",
    "hits_model", "answer_model", "SearchMode", "AskMode", "validation_message",
]

SearchMode = Literal["hybrid", "bm25", "dense"]
AskMode = Literal["followup", "rag", "search-tags"]
#: non-blank text (JSON-schema patterns are unanchored: "contains a non-space character")
_NON_BLANK = r"\S"


class MetadataModel(BaseModel):
    """Provenance a reader can cite (``medrag.types.Metadata``)."""

    pmid: str | None = None
    pmcid: str | None = None
    doi: str | None = None
    journal: str | None = None
    year: int | None = None
    mesh: list[str] = []
    publication_types: list[str] = []
    url: str | None = None
    license: str | None = None
    organization: str | None = None
    extra: dict[str, str] = {}


class HitModel(BaseModel):
    """One retrieved chunk; ``rank`` starts at 1, ``score`` is the retriever's (fused) score."""

    chunk_id: str
    doc_id: str
    score: float
    rank: int
    text: str
    title: str
    section: str
    source: str
    metadata: MetadataModel


class SearchResponse(BaseModel):
    query: str
    k: int
    mode: str
    hits: list[HitModel]


class QueryHits(BaseModel):
    query: str
    hits: list[HitModel]


class BatchSearchResponse(BaseModel):
    k: int
    mode: str
    results: list[QueryHits]


class CitationModel(BaseModel):
    chunk_id: str
    doc_id: str
    title: str
    source: str
    quote: str
    pmid: str | None = None
    doi: str | None = None
    url: str | None = None


class AnswerModel(BaseModel):
    """``medrag.types.Answer``. ``answered_by``: ``model`` (a trusted model's grounded answer), ``evidence``
    (the cited evidence is shown instead), ``none`` (nothing relevant was found). ``trace`` is empty unless
    the request asked for it."""

    question: str
    answer: str
    option: str | None = None
    reasoning: str = ""
    insufficient_evidence: bool = False
    citations: list[CitationModel] = []
    trace: list[dict[str, Any]] = []
    model: str = ""
    disclaimer: str = ""
    timings: dict[str, float] = {}
    answered_by: str = "model"
    notes: list[str] = []


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code (bad_request, unauthorized, timeout …).")
    message: str = Field(description="One line a person can act on.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class HealthResponse(BaseModel):
    """Liveness; the other fields only for requests carrying the API key (or on a keyless server)."""

    status: Literal["ok"]
    version: str | None = None
    index: str | None = Field(default=None, description="The index directory's name (never an absolute path).")
    rows: int | None = None
    modes: list[str] | None = None
    default_mode: str | None = None
    llm: str | None = Field(default=None, description="The model's name (no endpoint URL or file path).")
    ask: bool | None = None
    searches: int | None = Field(default=None,
                                 description="Queries searched since start (including merged batches).")
    search_batches: int | None = Field(
        default=None, description="batch_search calls those queries took (merging makes it fewer).")


def hits_model(hits: list[Hit]) -> list[HitModel]:
    return [HitModel.model_validate(h.to_dict()) for h in hits]


def answer_model(answer: Answer, include_trace: bool) -> AnswerModel:
    data = answer.to_dict()
    if not include_trace:
        data["trace"] = []
    return AnswerModel.model_validate(data)


@dataclass(frozen=True)
class RequestModels:
    """The request models for one ServeConfig."""

    filters: type[BaseModel]
    search: type[BaseModel]
    batch_search: type[BaseModel]
    ask: type[BaseModel]


def request_models(cfg: ServeConfig) -> RequestModels:
    """Request models whose field limits are ``cfg``'s."""
    values_t = Annotated[list[Annotated[str, Field(min_length=1, max_length=500)]],
                       Field(min_length=1, max_length=cfg.max_filter_values)]
    year_t = Annotated[int, Field(ge=0, le=9999)]
    k_t = Annotated[int, Field(ge=1, le=cfg.max_k, description=f"Hits per query (1..{cfg.max_k}).")]
    query_t = Annotated[str, Field(min_length=1, max_length=cfg.max_query_chars, pattern=_NON_BLANK)]

    class Filters(BaseModel):
        """Restrict retrieval (applied before the top-k cut); omitted keys do not filter."""

        model_config = ConfigDict(extra="forbid")
        source: values_t | None = Field(None, description="Allowed sources (pubmed, pmc, guidelines …).")
        year: tuple[year_t | None, year_t | None] | None = Field(
            None, description="Inclusive [low, high] publication years; either may be null.")
        doc_ids: values_t | None = Field(None, description="Allowed document ids.")

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: query_t
        k: k_t = cfg.default_k
        mode: SearchMode | None = Field(None, description="hybrid, bm25 or dense (default: the server's).")
        filters: Filters | None = None

    class BatchSearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        queries: list[query_t] = Field(min_length=1, max_length=cfg.max_batch)
        k: k_t = cfg.default_k
        mode: SearchMode | None = None
        filters: Filters | None = None

    class AskRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: str = Field(min_length=1, max_length=cfg.max_question_chars, pattern=_NON_BLANK)
        options: dict[Annotated[str, Field(pattern=r"^[A-Za-z]$")], Annotated[str, Field(
            min_length=1, max_length=1000, pattern=_NON_BLANK)]] | None = Field(
            None, max_length=26, description='Multiple-choice options {"A": "...", ...}.')
        mode: AskMode = Field("followup", description="followup (i-MedRAG loop), rag (single pass), search-tags.")
        rounds: int = Field(4, ge=1, le=cfg.max_rounds)
        queries_per_round: int = Field(3, ge=1, le=10)
        k: k_t | None = Field(None, description="Chunks retrieved per query (default 4).")
        retrieval_mode: SearchMode | None = None
        filters: Filters | None = None
        include_trace: bool = Field(False, description="Include the per-round trace (prompts, outputs).")

    return RequestModels(filters=Filters, search=SearchRequest, batch_search=BatchSearchRequest, ask=AskRequest)


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line for pydantic validation errors: the first error's field and message, and how many more."""
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "arguments"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return " ".join(f"{where}: {first.get('msg', 'invalid value')}{more}".split())
