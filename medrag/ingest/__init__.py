"""Ingestion: source parsers → chunker → sharded Arrow corpora.

Public API (imported lazily)::

    from medrag.ingest import ingest, build_default_corpus, IngestReport
    report = ingest("pubmed", ["pubmed25n0001.xml.gz"], "corpora/pubmed")
    path = build_default_corpus()          # corpora/guidelines, offline, from open-medicine
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _LAZY)
