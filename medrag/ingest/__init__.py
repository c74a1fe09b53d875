"""Ingestion: source parsers → chunker → sharded Arrow corpora.

Public API (imported lazily)::

    from medrag.ingest import ingest, build_default_corpus, IngestReport
    report = ingest("pubmed", ["pubmed25n0001.xml.gz"], "corpora/pubmed")
    path = build_default_corpus()          # corpora/guidelines, offline, from open-medicine
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .guidelines import build_default_corpus
    from .pipeline import IngestReport, ingest
    from .sources import SOURCES, get_source

__all__ = ["ingest", "IngestReport", "build_default_corpus", "SOURCES", "get_source"]

_LAZY = {
    "ingest": "medrag.ingest.pipeline",
    "IngestReport": "medrag.ingest.pipeline",
    "build_default_corpus": "medrag.ingest.guidelines",
    "SOURCES": "medrag.ingest.sources",
    "get_source": "medrag.ingest.sources",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medrag.ingest' has no attribute {name!r}")
