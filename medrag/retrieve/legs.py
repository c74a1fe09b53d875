"""Candidate generators over an index directory: ``BM25Leg`` (bm25s, memory-mapped) and ``DenseLeg`` (a
query encoder + FAISS over the leg's vector memmap, loaded on first use so a BM25-only search never imports
torch or faiss)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ..config import EncoderConfig, FaissConfig
from ..errors import IndexFormatError
from ..index.bm25 import BM25Index, lookup, top_sparse
from ..index.dense import DenseIndex, load_vectors, row_scores
from ..index.encoder import Encoder, load_encoder
from ..index.faiss_files import load_dense_faiss
from ..index.manifest import DenseRecord
from .fusion import rare_term_missing
from .stages import Candidates, Rows

__all__ = ["BM25Leg", "DenseLeg", "exact_scores"]

_QUERY_CACHE = 4096


class BM25Leg:
    """BM25 candidates: the top rows with a positive score; ``rescore`` reads the query's sparse scores."""

    kind = "bm25"

    def __init__(self, index: BM25Index, name: str = "bm25") -> None:
        self.name = name
        self.index = index

    def candidates(self, queries: Sequence[str], depth: int, mask: np.ndarray | None) -> list[Candidates]:
        out = []
        for query in queries:
            sparse = self.index.sparse_scores(query)
            rows, scores = top_sparse(sparse, depth, mask)
            out.append(Candidates(rows, scores, partial(lookup, sparse), partial(self.rare_missing, query)))
        return out

    def rare_missing(self, query: str, pool: np.ndarray, max_share: float) -> np.ndarray:
        """``fusion.rare_term_missing`` for this query's terms over ``pool``, from the postings."""
        s = self.index.model.scores
        indptr, indices = s["indptr"], s["indices"]
        terms = self.index.term_ids(query).tolist()
        spans = [(int(indptr[t]), int(indptr[t + 1])) for t in terms]
        df = np.array([b - a for a, b in spans], dtype=np.int64)
        # only rare terms' postings are read (a common term's may be long)
        limit = max_share * self.index.num_docs
        term_rows = [np.asarray(indices[a:b]) if 0 < b - a <= limit else np.zeros(0, np.int64) for a, b in spans]
        return rare_term_missing(term_rows, df, self.index.num_docs, max_share, pool)

    def top(self, queries: Sequence[str], k: int, mask: np.ndarray | None) -> list[Rows]:
        return self.index.search_many(queries, k, mask)


class DenseLeg:
    """Dense candidates from one encoder's vectors: FAISS search (exact filtered search under a mask);
    ``rescore`` is the exact similarity from the memory-mapped vectors."""

    kind = "dense"

    def __init__(self, root: Path, record: DenseRecord, encoder: EncoderConfig, faiss: FaissConfig,
                 name: str = "dense") -> None:
        self.name = name
        self.root = root
        self.record = record
        self.encoder_config = encoder
        self.faiss_config = faiss
        self._index: DenseIndex | None = None
        self._encoder: Encoder | None = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def index(self) -> DenseIndex:
        if self._index is None:
            vectors = load_vectors(self.root / self.record.vectors, dim=self.record.dim)
            faiss_index = load_dense_faiss(self.root, self.record.faiss, self.faiss_config)
            if faiss_index.ntotal != vectors.shape[0]:
                raise IndexFormatError(
                    f"{self.root}: FAISS of leg {self.name!r} holds {faiss_index.ntotal} vectors, .npy {vectors.shape[0]}"
                )
            self._index = DenseIndex(faiss_index, vectors, self.record.metric, self.faiss_config)
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
            encoder = load_encoder(self.encoder_config)
            if encoder.dim != self.record.dim:
                raise IndexFormatError(
                    f"{self.root}: query encoder dimension {encoder.dim} of leg {self.name!r} differs from the "
                    f"index's {self.record.dim}"
                )
            self._encoder = encoder
        return self._encoder.encode_queries(queries)

    def search(self, vectors: np.ndarray, depth: int, mask: np.ndarray | None) -> list[Rows]:
        index = self.index
        if mask is None:
            rows, scores = index.search(vectors, depth)
            return list(zip(rows, scores, strict=True))
        return [index.search_filtered(v, depth, mask) for v in vectors]

    def top(self, queries: Sequence[str], k: int, mask: np.ndarray | None) -> list[Rows]:
        return self.search(self.encode(queries), k, mask)

    def candidates(self, queries: Sequence[str], depth: int, mask: np.ndarray | None) -> list[Candidates]:
        vectors = self.encode(queries)
        index = self.index
        return [
            Candidates(rows, scores, partial(exact_scores, index, vector))
            for (rows, scores), vector in zip(self.search(vectors, depth, mask), vectors, strict=True)
        ]


def exact_scores(index: DenseIndex, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return row_scores(index.vectors, rows, vector, index.metric)
