"""Hybrid indexes: BM25 (bm25s) + dense vectors (sentence-transformers) in FAISS, with a manifest.

``build_index`` writes an index directory; ``load_index`` opens one as a ``HybridRetriever``. Importing this
package is light (numpy/pyarrow); torch and faiss load only when a dense part is built or searched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import FusionConfig
from .build import build_index

if TYPE_CHECKING:  # pragma: no cover
    from ..retrieve.hybrid import HybridRetriever

__all__ = ["DEFAULT_INDEX", "DEFAULT_CORPUS", "build_index", "load_index"]

#: where ``medrag index build`` writes and ``medrag search`` / ``medrag.load_index()`` read by default
DEFAULT_INDEX = Path("indexes/default")
#: the embedded guideline corpus ``medrag index build`` indexes by default
DEFAULT_CORPUS = Path("corpora/guidelines")


def load_index(
    path: str | Path = DEFAULT_INDEX,
    *,
    mode: str = "hybrid",
    device: str = "cpu",
    verify: bool = False,
    fusion: FusionConfig | None = None,
) -> HybridRetriever:
    """Open an index as a ``HybridRetriever`` (see ``medrag.retrieve.hybrid.load_index``)."""
    from ..retrieve.hybrid import load_index as _load

    return _load(path, mode=mode, device=device, verify=verify, fusion=fusion)
