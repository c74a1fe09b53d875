"""``HybridRetriever``: BM25 + dense (FAISS) over one corpus, fused; and ``load_index``.

Composition: a ``BM25Index`` and a ``DenseIndex`` search the same corpus rows; fusion (``fusion.py``) combines
them. ``mode`` picks ``"hybrid"``, ``"bm25"`` or ``"dense"``. Filters become a row mask applied inside each
retriever before its top-k cut. The dense side (FAISS, vectors, and above all the encoder) loads on first use,
so a BM25-only search never imports torch.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FusionConfig, IndexConfig, index_config_from_dict
from ..errors import ConfigError, IndexFormatError
from ..ingest.store import Corpus
from ..types import Hit
from .base import Filters, check_k, check_query
from .filters import MaskCache
from .fusion import rank, rrf_fusion, union_rows, weighted_fusion

__all__ = ["MODES", "HybridRetriever", "load_index"]

log = logging.getLogger(__name__)

MODES = ("hybrid", "bm25", "dense")
_QUERY_CACHE = 4096
Rows = tuple[np.ndarray, np.ndarray]


class _Dense:
    """The lazily loaded dense side: FAISS index + vector memmap + query encoder."""

    def __init__(self, path: Path, manifest: dict[str, Any], config: IndexConfig) -> None:
        self.path = path
        self.manifest = manifest
        self.config = config
        self._index: Any = None
        self._encoder: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def index(self) -> Any:
        if self._index is None:
            from ..index.dense import DenseIndex
            from ..index.faiss_files import load_dense_faiss

            dense = self.manifest["dense"]
            vectors = np.load(self.path / dense["vectors"], mmap_mode="r")
            faiss_index = load_dense_faiss(self.path, dense["faiss"], self.config.faiss)
            if faiss_index.ntotal != vectors.shape[0]:
                raise IndexFormatError(f"{self.path}: FAISS holds {faiss_index.ntotal} vectors, .npy {vectors.shape[0]}")
            self._index = DenseIndex(faiss_index, vectors, dense["metric"], self.config.faiss)
        return self._index

    def encode(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors; recently seen queries come from a small LRU (reasoning loops repeat queries)."""
        found = {q: self._cache[q] for q in queries if q in self._cache}
        missing = [q for q in dict.fromkeys(queries) if q not in found]
        if missing:
            found.update(zip(missing, self._encode(missing), strict=True))
        for q, vector in found.items():
            self._cache[q] = vector
            self._cache.move_to_end(q)
        while len(self._cache) > _QUERY_CACHE:
            self._cache.popitem(last=False)
        return np.stack([found[q] for q in queries])

    def _encode(self, queries: list[str]) -> np.ndarray:
        if self._encoder is None:
            from ..index.encoder import load_encoder

            self._encoder = load_encoder(self.config.encoder)
            if self._encoder.dim != self.manifest["dense"]["dim"]:
                raise IndexFormatError(
                    f"{self.path}: query encoder dimension {self._encoder.dim} differs from the index's "
                    f"{self.manifest['dense']['dim']}"
                )
        return self._encoder.encode_queries(queries)


class HybridRetriever:
    """Search an index directory; implements ``medrag.retrieve.base.Retriever``.

    ``corpus`` is the memory-mapped corpus the index was built on; ``manifest`` the index manifest.
    """

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        corpus: Corpus,
        bm25: Any,
        dense: _Dense | None,
        fusion: FusionConfig,
        mode: str = "hybrid",
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode != "bm25" and dense is None:
            raise ConfigError(f"{path}: index has no dense part (built BM25-only); use mode='bm25'")
        self.path = path
        self.manifest = manifest
        self.corpus = corpus
        self.bm25 = bm25
        self._dense = dense
        self.fusion = fusion
        self.mode = mode
        self._masks = MaskCache(corpus)

    def __repr__(self) -> str:
        return f"HybridRetriever({str(self.path)!r}, mode={self.mode!r}, rows={self.corpus.num_rows})"

    def with_options(self, *, mode: str | None = None, fusion: FusionConfig | None = None) -> HybridRetriever:
        """The same loaded index searched with another mode and/or fusion (shares all loaded parts)."""
        clone = HybridRetriever(
            self.path, self.manifest, self.corpus, self.bm25, self._dense,
            fusion or self.fusion, mode or self.mode,
        )
        clone._masks = self._masks
        return clone

    # -- Retriever protocol ------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: Filters | Mapping[str, Any] | None = None) -> list[Hit]:
        return self.batch_search([query], k=k, filters=filters)[0]

    def batch_search(
        self, queries: Sequence[str], k: int = 10, filters: Filters | Mapping[str, Any] | None = None
    ) -> list[list[Hit]]:
        if isinstance(queries, str):
            queries = [queries]
        cleaned = [check_query(q) for q in queries]
        k = check_k(k)
        mask = self._masks.get(Filters.parse(filters))
        return [self._hits(rows, scores) for rows, scores in self.search_rows(cleaned, k, mask)]

    # -- rows and scores ---------------------------------------------------------------------------
    def search_rows(self, queries: Sequence[str], k: int, mask: np.ndarray | None = None) -> list[Rows]:
        """Corpus rows and scores per query, best first (the layer under ``batch_search``)."""
        if not queries:
            return []
        if self.mode == "bm25":
            return self.bm25.search_many(queries, k, mask)
        vectors = self._dense_part().encode(queries)
        depth = k if self.mode == "dense" else max(k, self.fusion.depth)
        dense_hits = self._dense_rows(vectors, depth, mask)
        if self.mode == "dense":
            return dense_hits
        return [self._fuse(q, v, d, k, mask) for q, v, d in zip(queries, vectors, dense_hits, strict=True)]

    def _dense_part(self) -> _Dense:
        if self._dense is None:
            raise ConfigError(f"{self.path}: index has no dense part (built BM25-only); use mode='bm25'")
        return self._dense

    def _dense_rows(self, vectors: np.ndarray, depth: int, mask: np.ndarray | None) -> list[Rows]:
        index = self._dense_part().index
        if mask is None:
            rows, scores = index.search(vectors, depth)
            return list(zip(rows, scores, strict=True))
        return [index.search_filtered(v, depth, mask) for v in vectors]

    def _fuse(self, query: str, vector: np.ndarray, dense: Rows, k: int, mask: np.ndarray | None) -> Rows:
        from ..index.bm25 import lookup, top_sparse
        from ..index.dense import row_scores

        fusion = self.fusion
        depth = max(k, fusion.depth)
        sparse = self.bm25.sparse_scores(query)
        bm25_rows, _ = top_sparse(sparse, depth, mask)
        dense_rows, _ = dense
        if fusion.method == "rrf":
            rows, scores = rrf_fusion([bm25_rows, dense_rows], k=fusion.rrf_k, weights=fusion.weights)
            return rows[:k], scores[:k]
        candidates = union_rows(bm25_rows, dense_rows)
        index = self._dense_part().index
        dense_scores = row_scores(index.vectors, candidates, vector, index.metric)
        fused = weighted_fusion([lookup(sparse, candidates), dense_scores], fusion.weights, fusion.normalization)
        return rank(candidates, fused, k)

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> list[Hit]:
        return self.corpus.hits(rows, scores)


def load_index(
    path: str | Path = "indexes/default",
    *,
    mode: str = "hybrid",
    device: str = "cpu",
    verify: bool = False,
    fusion: FusionConfig | None = None,
) -> HybridRetriever:
    """Open an index directory (memory-mapped; never writes) and return its ``HybridRetriever``.

    Validates the manifest, file sizes (every sha256 with ``verify=True``) and the corpus fingerprints.
    ``device="cuda"`` runs the query encoder and FAISS on the GPU. ``fusion`` overrides the stored defaults.
    """
    from ..index.bm25 import BM25Index
    from ..index.manifest import check_files, read_index_manifest, resolve_corpora

    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    root = Path(path)
    manifest = read_index_manifest(root)
    check_files(root, manifest, verify=verify)
    corpus = resolve_corpora(root, manifest, verify=verify)
    config = index_config_from_dict(manifest.get("config", {}))
    if device != "cpu":
        config = dataclasses.replace(
            config,
            encoder=dataclasses.replace(config.encoder, device=device),
            faiss=dataclasses.replace(config.faiss, device=device),
        )
    bm25 = BM25Index.load(root / manifest["bm25"]["dir"], config.bm25)
    if bm25.num_docs != corpus.num_rows:
        raise IndexFormatError(f"{root}: BM25 holds {bm25.num_docs} documents, the corpus {corpus.num_rows}")
    dense = _Dense(root, manifest, config) if manifest.get("dense") else None
    return HybridRetriever(root, manifest, corpus, bm25, dense, fusion or config.fusion, mode)
