"""medrag: medical retrieval-augmented reasoning.

``import medrag`` is cheap: it imports no torch, faiss, LLM runtime or web framework. The heavy parts load
on first use through the functions below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_getattr
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
    from .ingest.store import Corpus  # deferred: pyarrow (medrag.ingest.store)

    return Corpus.open(path)


#: lazy public API: name -> the module defining it, imported on first access (keeps ``import medrag`` light)
_LAZY: dict[str, str] = {
    "load_index": "medrag.retrieve.load",
    "build_index": "medrag.index.build",
    "HybridRetriever": "medrag.retrieve.hybrid",
    "ask": "medrag.reason.api",
    "load_llm": "medrag.llm",
    "FollowUpLoop": "medrag.reason.loop",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
