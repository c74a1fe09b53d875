"""Record types shared by every stage.

All records are frozen values, safe to share between threads and to cache; sequences are tuples, never lists,
so a record can be hashed and compared. All are frozen dataclasses except ``Hit``, which every search builds k
of: it keeps its stored row's values as one shared tuple (``StoredRow``) plus its score and rank, and behaves
like the others (keyword or positional constructor, ``==``, ``hash``, ``repr``, assignment raises).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import FrozenInstanceError, asdict, dataclass, field, fields
from itertools import repeat
from typing import Any, NoReturn

__all__ = [
    "Metadata",
    "Section",
    "Document",
    "Chunk",
    "Hit",
    "StoredRow",
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


#: A corpus row's values as the corpus store reads them: ``chunk_id, doc_id, source, title, section, text,
#: position, metadata`` (``Hit`` keeps one by reference).
StoredRow = tuple[str, str, str, str, str, str, int, Metadata]

_NO_METADATA = Metadata()


def _row_item(i: int, doc: str) -> property:
    return property(lambda self: self._row[i], doc=doc)


class Hit:
    """One retrieved chunk. ``rank`` starts at 1; ``score`` is the retriever's (fused) score.

    Fields: ``chunk_id, doc_id, score, rank, text, title, section, source, metadata`` (constructor order). A hit
    holds its row's values as one ``StoredRow`` tuple shared with the corpus store (``from_rows``), so building the
    k hits of a search costs three slot writes each instead of nine field copies.
    """

    __slots__ = ("_row", "score", "rank")
    __match_args__ = ("chunk_id", "doc_id", "score", "rank", "text", "title", "section", "source", "metadata")
    _row: StoredRow
    score: float
    rank: int

    def __init__(self, chunk_id: str, doc_id: str, score: float, rank: int, text: str, title: str, section: str,
                 source: str, metadata: Metadata = _NO_METADATA) -> None:
        _SET_ROW(self, (chunk_id, doc_id, source, title, section, text, 0, metadata))
        _SET_SCORE(self, score)
        _SET_RANK(self, rank)

    chunk_id: str = _row_item(0, "the chunk's id (``<doc_id>#<position>``)")  # type: ignore[assignment]
    doc_id: str = _row_item(1, "the source document's id")  # type: ignore[assignment]
    source: str = _row_item(2, "the corpus source (``pubmed``, ``pmc``, ``jsonl`` …)")  # type: ignore[assignment]
    title: str = _row_item(3, "the document's title")  # type: ignore[assignment]
    section: str = _row_item(4, "the section heading the chunk comes from")  # type: ignore[assignment]
    text: str = _row_item(5, "the chunk's text")  # type: ignore[assignment]
    metadata: Metadata = _row_item(7, "the document's provenance")  # type: ignore[assignment]

    @classmethod
    def from_rows(cls, rows: Sequence[StoredRow], scores: Sequence[float], ranks: Sequence[int]) -> list[Hit]:
        """One hit per stored row with its score and rank, each referencing its row tuple (nothing copied).

        Equal to ``[Hit(r[0], r[1], s, k, r[5], r[3], r[4], r[2], r[7]) ...]``; the slots are filled a column at
        a time through their descriptors (one C-level ``map`` each)."""
        n = len(rows)
        if len(scores) != n or len(ranks) != n:
            raise ValueError(f"{n} rows, {len(scores)} scores and {len(ranks)} ranks")
        hits = list(map(object.__new__, repeat(cls, n)))
        deque(map(_SET_ROW, hits, rows), maxlen=0)
        deque(map(_SET_SCORE, hits, scores), maxlen=0)
        deque(map(_SET_RANK, hits, ranks), maxlen=0)
        return hits

    def _fields(self) -> tuple[Any, ...]:
        r = self._row
        return r[0], r[1], self.score, self.rank, r[5], r[3], r[4], r[2], r[7]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={value!r}" for name, value in zip(self.__match_args__, self._fields(),
                                                                       strict=True))
        return f"Hit({values})"

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[Hit], tuple[Any, ...]]:
        return Hit, self._fields()

    def to_dict(self) -> dict[str, Any]:
        d = dict(zip(self.__match_args__, self._fields(), strict=True))
        d["metadata"] = self.metadata.to_dict()
        return d


# the slots' descriptors (``Hit.__dict__``: attribute access on the class reads as the annotated field types)
_SET_ROW, _SET_SCORE, _SET_RANK = (Hit.__dict__[name].__set__ for name in Hit.__slots__)


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
