"""medrag: medical retrieval-augmented reasoning.

``import medrag`` is cheap: it imports no torch, faiss, LLM runtime or web framework. The heavy parts load
on first use through the functions below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import MedragError
from .types import Answer, Chunk, Citation, Document, Hit, Metadata, Section

if TYPE_CHECKING:  # pragma: no cover
    from .ingest.store import Corpus

__all__ = [
    "__version__",
    "MedragError",
    "Answer",
    "Chunk",
    "Citation",
    "Document",
    "Hit",
    "Metadata",
    "Section",
    "open_corpus",
    "load_index",
    "build_index",
    "HybridRetriever",
    "ask",
    "load_llm",
    "FollowUpLoop",
]


def open_corpus(path: str) -> Corpus:
    """Open a corpus directory (memory-mapped, read-only)."""
    from .ingest.store import Corpus

    return Corpus.open(path)


#: lazy public API: name -> "module:attribute", imported on first access (keeps ``import medrag`` light)
_LAZY: dict[str, str] = {
    "load_index": "medrag.retrieve.hybrid:load_index",
    "build_index": "medrag.index.build:build_index",
    "HybridRetriever": "medrag.retrieve.hybrid:HybridRetriever",
    "ask": "medrag.reason.api:ask",
    "load_llm": "medrag.llm:load_llm",
    "FollowUpLoop": "medrag.reason.loop:FollowUpLoop",
}


def __getattr__(name: str) -> Any:  # lazy public API added by later stages
    target = _LAZY.get(name)
    if target is not None:
        import importlib

        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'medrag' has no attribute {name!r}")
