"""Hybrid indexes: BM25 (bm25s) + dense vectors (sentence-transformers) in FAISS, with a manifest.

``build_index`` writes an index directory; ``medrag.retrieve.load_index`` (also ``medrag.load_index``) opens
one for search. Importing this package is light (numpy/pyarrow); torch and faiss load only when a dense part
is built or searched.
"""

from __future__ import annotations

from pathlib import Path

from .build import build_index

__all__ = ["DEFAULT_INDEX", "DEFAULT_CORPUS", "build_index"]

#: where ``medrag index build`` writes and ``medrag search`` / ``medrag.load_index()`` read by default
DEFAULT_INDEX = Path("indexes/default")
#: the embedded guideline corpus ``medrag index build`` indexes by default
DEFAULT_CORPUS = Path("corpora/guidelines")
