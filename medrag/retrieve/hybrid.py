"""``HybridRetriever``: a retrieval pipeline over one index — legs -> fusion -> optional re-rank — and
``load_index``, which composes it from the index manifest.

The legs (``legs.py``: BM25, one or more dense encoders) search the same corpus rows; ``Fusion``
(``stages.py``) combines them; a ``Reranker`` (``rerank.py``) may re-score the fused top rows. ``mode`` picks
``"hybrid"`` (every leg, fused), ``"bm25"``, ``"dense"`` (the first dense leg) or a leg by name. Filters become a
row mask applied inside each leg before its top-k cut. Dense legs load on first use, so a BM25-only search
never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FusionConfig
from ..errors import ConfigError
from ..index.manifest import IndexManifest
from ..index.rows import passage_texts
from ..ingest.store import Corpus
from ..types import Hit
from .base import Filters, check_k, check_query
from .filters import MaskCache
from .legs import BM25Leg, DenseLeg
from .prf import FeedbackBM25Leg, FeedbackDenseLeg
from .stages import CandidateGenerator, Fusion, Reranker, Rows

__all__ = ["MODES", "HybridRetriever"]

MODES = ("hybrid", "bm25", "dense")


class HybridRetriever:
    """Search an index directory; implements ``medrag.retrieve.base.Retriever``.

    ``legs``: the candidate generators, in fusion-weight order; ``weights``: one fusion weight per leg;
    ``corpus``: the memory-mapped corpus the index was built on; ``manifest``: the index manifest.
    """

    def __init__(
        self,
        path: Path,
        manifest: IndexManifest,
        corpus: Corpus,
        legs: Sequence[CandidateGenerator],
        weights: Sequence[float],
        fusion: FusionConfig,
        mode: str = "hybrid",
        reranker: Reranker | None = None,
    ) -> None:
        if len(weights) != len(legs):
            raise ConfigError(f"{path}: {len(legs)} legs but {len(weights)} fusion weights")
        self.path = path
        self.manifest = manifest
        self.corpus = corpus
        self.legs = tuple(legs)
        self.weights = tuple(weights)
        self.fusion = fusion
        self.mode = mode
        self.reranker = reranker
        self._active = self._select(mode)
        self._masks = MaskCache(corpus)

    def _select(self, mode: str) -> tuple[int, ...]:
        kinds = [leg.kind for leg in self.legs]
        names = [leg.name for leg in self.legs]
        if mode == "hybrid":
            if "dense" not in kinds:
                raise ConfigError(f"{self.path}: index has no dense part (built BM25-only); use mode='bm25'")
            return tuple(range(len(self.legs)))
        if mode == "dense" and "dense" not in kinds:
            raise ConfigError(f"{self.path}: index has no dense part (built BM25-only); use mode='bm25'")
        if mode in ("bm25", "dense"):
            return (kinds.index(mode),)
        if mode in names:
            return (names.index(mode),)
        raise ConfigError(f"mode must be one of {', '.join([*MODES, *names[2:]])}, got {mode!r}")

    def __repr__(self) -> str:
        return f"HybridRetriever({str(self.path)!r}, mode={self.mode!r}, rows={self.corpus.num_rows})"

    @property
    def modes(self) -> list[str]:
        """The modes this index can be searched in."""
        return list(self.manifest.modes)

    @property
    def bm25(self) -> Any:
        """The BM25 index of the first BM25 leg."""
        return next(leg.index for leg in self.legs if isinstance(leg, BM25Leg))

    @property
    def _dense(self) -> DenseLeg | None:
        return next((leg for leg in self.legs if isinstance(leg, DenseLeg)), None)

    def with_options(
        self, *, mode: str | None = None, fusion: FusionConfig | None = None, reranker: Reranker | None = None
    ) -> HybridRetriever:
        """The same loaded index searched with another mode, fusion and/or re-ranker (shares all loaded parts)."""
        clone = HybridRetriever(
            self.path, self.manifest, self.corpus, self.legs, self.weights, fusion or self.fusion,
            mode or self.mode, reranker or self.reranker,
        )
        clone._masks = self._masks
        return clone

    # -- Retriever protocol ------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: Filters | Mapping[str, Any] | None = None) -> list[Hit]:
        query = check_query(query)
        mask = self._masks.get(Filters.parse(filters)) if filters is not None else None
        rows, scores = self.search_rows([query], check_k(k), mask)[0]
        return self.corpus.hits(rows, scores)

    def batch_search(
        self, queries: Sequence[str], k: int = 10, filters: Filters | Mapping[str, Any] | None = None
    ) -> list[list[Hit]]:
        if isinstance(queries, str):
            queries = [queries]
        cleaned = [check_query(q) for q in queries]
        k = check_k(k)
        mask = self._masks.get(Filters.parse(filters)) if filters is not None else None
        return self.corpus.hits_many(self.search_rows(cleaned, k, mask))

    # -- rows and scores ---------------------------------------------------------------------------
    def search_rows(self, queries: Sequence[str], k: int, mask: np.ndarray | None = None) -> list[Rows]:
        """Corpus rows and scores per query, best first (the layer under ``batch_search``)."""
        if not queries:
            return []
        reranker = self.reranker
        if reranker is None:
            return self._retrieve(queries, k, mask)
        ranked = self._retrieve(queries, max(k, reranker.depth), mask)
        return [self._rerank(reranker, q, rows, k) for q, (rows, _) in zip(queries, ranked, strict=True)]

    def _retrieve(self, queries: Sequence[str], k: int, mask: np.ndarray | None) -> list[Rows]:
        legs = [self.legs[i] for i in self._active]
        if len(legs) == 1:
            return legs[0].top(queries, k, mask)
        legs = [self._with_feedback(leg) for leg in legs]
        fusion = Fusion(self.fusion, [self.weights[i] for i in self._active])
        depth = fusion.depth(k)
        per_leg = [leg.candidates(queries, depth, mask) for leg in legs]
        return [fusion.fuse(cands, k) for cands in zip(*per_leg, strict=True)]

    def _with_feedback(self, leg: CandidateGenerator) -> CandidateGenerator:
        """``leg`` with the pseudo-relevance feedback that ``self.fusion`` asks for (fusion only)."""
        if isinstance(leg, BM25Leg) and self.fusion.bm25_feedback_weight:
            return FeedbackBM25Leg(leg, self._row_texts, self.fusion)
        if isinstance(leg, DenseLeg) and self.fusion.dense_feedback_weight:
            return FeedbackDenseLeg(leg, self.fusion)
        return leg

    def _row_texts(self, rows: np.ndarray) -> list[str]:
        """The BM25-indexed text of ``rows`` (the fields the index was built on, joined as at build time)."""
        fields = list(self.manifest.config.bm25.fields)
        part = self.corpus.table.select(fields).take(np.asarray(rows, dtype=np.int64)).combine_chunks()
        return passage_texts(part.to_batches()[0], fields) if part.num_rows else []

    def _rerank(self, reranker: Reranker, query: str, rows: np.ndarray, k: int) -> Rows:
        texts = [c.text for c in self.corpus.take(rows.tolist())]
        new_rows, scores = reranker.rerank(query, rows, texts)
        return new_rows[:k], scores[:k]
