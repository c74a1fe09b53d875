"""The retriever protocol every retriever (BM25, dense, hybrid, remote) implements, and search filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import QueryError
from ..types import Hit

__all__ = ["Retriever", "Filters", "check_query", "check_k", "check_text"]


@dataclass(frozen=True)
class Filters:
    """Metadata restrictions applied *inside* retrieval (before top-k truncation).

    ``source``: allowed ``Chunk.source`` values; ``year``: inclusive ``(low, high)``, either bound may be
    None (chunks without a year never match a year filter); ``doc_ids``: allowed ``Chunk.doc_id`` values.
    """

    source: tuple[str, ...] | None = None
    year: tuple[int | None, int | None] | None = None
    doc_ids: tuple[str, ...] | None = None

    KEYS = ("source", "year", "doc_ids")

    @classmethod
    def parse(cls, filters: Filters | Mapping[str, Any] | None) -> Filters | None:
        """Normalise a user mapping (``{"source": "pubmed", "year": (2015, 2025)}``) into Filters."""
        if filters is None or isinstance(filters, Filters):
            return filters
        if not isinstance(filters, Mapping):
            raise QueryError(f"filters must be a mapping, got {type(filters).__name__}")
        unknown = sorted(set(filters) - set(cls.KEYS))
        if unknown:
            raise QueryError(f"unknown filter(s) {', '.join(unknown)}; known: {', '.join(cls.KEYS)}")
        return cls(
            source=_strings(filters.get("source"), "source"),
            year=_year_range(filters.get("year")),
            doc_ids=_strings(filters.get("doc_ids"), "doc_ids"),
        )

    @property
    def empty(self) -> bool:
        return self.source is None and self.year is None and self.doc_ids is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": list(self.source) if self.source is not None else None,
            "year": list(self.year) if self.year is not None else None,
            "doc_ids": list(self.doc_ids) if self.doc_ids is not None else None,
        }


def _strings(value: Any, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise QueryError(f"filter {name!r} must be a string or a list of strings")


def _year_range(value: Any) -> tuple[int | None, int | None] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        lo, hi = value
        if all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (lo, hi)):
            if lo is not None and hi is not None and lo > hi:
                raise QueryError(f"filter 'year' range is empty: {lo} > {hi}")
            return (lo, hi)
    raise QueryError("filter 'year' must be a year or a [low, high] pair (either may be null)")


def check_query(query: Any) -> str:
    """The query stripped; QueryError when it is not a non-empty string."""
    if not isinstance(query, str) or not query.strip():
        raise QueryError("query must be a non-empty string")
    check_text(query, "query")
    return query.strip()


def check_text(text: str, what: str = "query") -> str:
    """``text`` unchanged when it is encodable as UTF-8; a one-line QueryError when it holds a lone surrogate
    (what invalid UTF-8 bytes on a command line or a ``"\\ud800"`` JSON escape decode to)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError(
            f"{what} is not valid UTF-8 text (undecodable byte or lone surrogate at character {exc.start})"
        ) from None
    return text


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise QueryError(f"k must be a positive integer, got {k!r}")
    return k


@runtime_checkable
class Retriever(Protocol):
    """``search(query, k) -> list[Hit]`` and its batched form. Hits are sorted by rank (1..k)."""

    def search(
        self, query: str, k: int = 10, filters: Filters | Mapping[str, Any] | None = None
    ) -> list[Hit]: ...

    def batch_search(
        self, queries: Sequence[str], k: int = 10, filters: Filters | Mapping[str, Any] | None = None
    ) -> list[list[Hit]]: ...
