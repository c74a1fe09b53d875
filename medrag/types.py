"""Record types shared by every stage.

All records are frozen dataclasses: they are values, safe to share between threads and to cache.
Sequences are tuples, never lists, so a record can be hashed and compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "Metadata",
    "Section",
    "Document",
    "Chunk",
    "Hit",
    "Citation",
    "RetrievalStep",
    "TraceStep",
    "Answer",
    "chunk_id_for",
]


@dataclass(frozen=True, slots=True)
class Metadata:
    """Provenance a reader can cite. Every field is optional: fill what the source knows."""

    pmid: str | None = None
    pmcid: str | None = None
    doi: str | None = None
    journal: str | None = None
    year: int | None = None
    mesh: tuple[str, ...] = ()
    publication_types: tuple[str, ...] = ()
    url: str | None = None
    license: str | None = None
    organization: str | None = None
    #: source-specific extras as sorted (key, value) string pairs (stored as a JSON object)
    extra: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mesh"] = list(self.mesh)
        d["publication_types"] = list(self.publication_types)
        d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Metadata:
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {k: v for k, v in d.items() if k in known and v is not None}
        for key in ("mesh", "publication_types"):
            if key in kw:
                kw[key] = tuple(kw[key])
        if "extra" in kw:
            extra = kw["extra"]
            if isinstance(extra, str):
                extra = json.loads(extra) if extra else {}
            kw["extra"] = tuple(sorted((str(k), str(v)) for k, v in dict(extra).items()))
        if "year" in kw:
            kw["year"] = int(kw["year"])
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class Section:
    """A headed part of a document (an abstract's BACKGROUND, a JATS <sec>, a markdown ## heading)."""

    heading: str
    text: str


@dataclass(frozen=True, slots=True)
class Document:
    """A source document before chunking.

    ``doc_id`` is unique within a corpus and stable across re-ingestion (``pubmed:29768149``,
    ``pmc:PMC3220730``, ``guideline:acc_aha_af_2023/anticoagulation``, or a BEIR id verbatim).
    """

    doc_id: str
    source: str
    title: str
    sections: tuple[Section, ...]
    metadata: Metadata = field(default_factory=Metadata)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections if s.text)


def chunk_id_for(doc_id: str, position: int) -> str:
    """Deterministic chunk id: ``<doc_id>#<position>`` (``pubmed:29768149#0``)."""
    return f"{doc_id}#{position}"


@dataclass(frozen=True, slots=True)
class Chunk:
    """The unit that is indexed, retrieved and cited."""

    chunk_id: str
    doc_id: str
    source: str
    title: str
    section: str
    text: str
    position: int
    metadata: Metadata = field(default_factory=Metadata)


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk. ``rank`` starts at 1; ``score`` is the retriever's (fused) score."""

    chunk_id: str
    doc_id: str
    score: float
    rank: int
    text: str
    title: str
    section: str
    source: str
    metadata: Metadata = field(default_factory=Metadata)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "metadata"}
        d["metadata"] = self.metadata.to_dict()
        return d


@dataclass(frozen=True, slots=True)
class Citation:
    """Evidence an answer rests on: enough to find and check the source."""

    chunk_id: str
    doc_id: str
    title: str
    source: str
    quote: str
    pmid: str | None = None
    doi: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RetrievalStep:
    """One query sent to the retriever and the chunk ids it returned."""

    query: str
    chunk_ids: tuple[str, ...]
    scores: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "chunk_ids": list(self.chunk_ids), "scores": list(self.scores)}


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One round of a reasoning loop: what was asked, found, prompted and generated, and how long it took."""

    round: int
    kind: str  # "follow-up", "search-tag", "final", "rag"
    queries: tuple[str, ...] = ()
    retrievals: tuple[RetrievalStep, ...] = ()
    prompts: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    #: seconds per stage: {"retrieval": .., "llm": .., "overhead": ..}
    timings: tuple[tuple[str, float], ...] = ()
    #: LLM use: {"llm_calls": .., "prompt_tokens": .., "completion_tokens": .., "budget_forced": ..} — the last
    #: counts generations cut inside their think block that were closed and continued for an answer
    usage: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "usage": dict(self.usage),
            "round": self.round,
            "kind": self.kind,
            "queries": list(self.queries),
            "retrievals": [r.to_dict() for r in self.retrievals],
            "prompts": list(self.prompts),
            "outputs": list(self.outputs),
            "timings": dict(self.timings),
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """What ``medrag ask`` returns.

    ``insufficient_evidence`` is True when retrieval found nothing relevant or the model's answer could not
    be grounded in the evidence; then ``answer`` says so and ``citations`` hold the evidence that was found.
    """

    question: str
    answer: str
    citations: tuple[Citation, ...] = ()
    option: str | None = None
    reasoning: str = ""
    insufficient_evidence: bool = False
    trace: tuple[TraceStep, ...] = ()
    model: str = ""
    disclaimer: str = ""
    timings: tuple[tuple[str, float], ...] = ()
    #: who produced ``answer``: "model" (a trusted model's grounded answer), "evidence" (the retrieved
    #: evidence is shown instead: untrusted model, ungrounded or unparsable answer), "none" (nothing relevant)
    answered_by: str = "model"
    #: why an answer was withheld or changed (dropped citations, failed grounding, parse failures …)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "option": self.option,
            "reasoning": self.reasoning,
            "insufficient_evidence": self.insufficient_evidence,
            "citations": [c.to_dict() for c in self.citations],
            "trace": [t.to_dict() for t in self.trace],
            "model": self.model,
            "disclaimer": self.disclaimer,
            "timings": dict(self.timings),
            "answered_by": self.answered_by,
            "notes": list(self.notes),
        }
