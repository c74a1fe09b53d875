"""medrag.retrieve: retrieval pipelines (legs -> fusion -> re-rank) over an index, and ``load_index``."""

from __future__ import annotations

from .._lazy import lazy_getattr

__all__ = ["load_index", "HybridRetriever"]

#: loaded on first access: ``medrag.retrieve`` itself stays as light as ``medrag.retrieve.base``
__getattr__ = lazy_getattr(__name__, {"load_index": "medrag.retrieve.load", "HybridRetriever": "medrag.retrieve.hybrid"})
