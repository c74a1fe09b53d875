"""Helpers shared by the integrations: flat citation metadata, per-retriever locks, optional imports."""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ..types import Hit

__all__ = ["hit_metadata", "retriever_lock"]

_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's provenance as a flat dict of scalars (what vector stores and prompt templates expect).

    Always: ``chunk_id``, ``doc_id``, ``source``, ``title``, ``section``, ``rank``, ``score``; then whichever of
    ``pmid``, ``pmcid``, ``doi``, ``journal``, ``year``, ``url``, ``license``, ``organization`` the source knows;
    MeSH terms and publication types joined with ``"; "``.
    """
    meta: dict[str, Any] = {
        "chunk_id": hit.chunk_id, "doc_id": hit.doc_id, "source": hit.source, "title": hit.title,
        "section": hit.section, "rank": hit.rank, "score": float(hit.score),
    }
    m = hit.metadata
    for key in ("pmid", "pmcid", "doi", "journal", "year", "url", "license", "organization"):
        value = getattr(m, key)
        if value is not None and value != "":
            meta[key] = value
    if m.mesh:
        meta["mesh"] = "; ".join(m.mesh)
    if m.publication_types:
        meta["publication_types"] = "; ".join(m.publication_types)
    return meta


def retriever_lock(retriever: Any) -> threading.Lock:
    """One lock per retriever object. ``HybridRetriever`` keeps small unsynchronised caches (query vectors,
    filter masks), so adapters that may be called from several threads search under this lock."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(retriever)
        if lock is None:
            lock = threading.Lock()
            _LOCKS[retriever] = lock
        return lock


