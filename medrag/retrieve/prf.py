"""Pseudo-relevance feedback for the legs of a hybrid search: RM3-style on BM25 weights, Rocchio on query vectors.

BM25: the query is run once; the terms that carry most BM25 weight in its top ``docs`` rows (each row's term weights
L1-normalised, summed over the rows, the query's own terms left out) become an expansion query of ``terms``
terms; the final BM25 score of a row is ``(1 - weight) * original + weight * scale * expansion``, where
``scale`` puts the expansion's best score on the original's (so ``weight`` is a share, whatever the corpus).
Dense: the query vector gains ``weight`` times the mean vector of the leg's top ``docs`` rows, and the leg is
searched again with it (``rocchio``). The math is small pure functions here; ``FeedbackBM25Leg`` and
``FeedbackDenseLeg`` wire them to an index and its corpus, in fusion only (a leg searched alone is the plain query).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from ..config import FusionConfig
from ..index.bm25 import lookup, top_sparse
from .legs import BM25Leg, DenseLeg, exact_scores
from .stages import Candidates, Rows

__all__ = ["row_term_weights", "feedback_query", "mix_sparse", "rocchio", "FeedbackBM25Leg", "FeedbackDenseLeg"]

#: sparse BM25 scores of one query: (rows ascending, float32 scores)
Sparse = tuple[np.ndarray, np.ndarray]


def row_term_weights(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, row: int,
                     terms: np.ndarray) -> np.ndarray:
    """The stored BM25 weight of each of ``terms`` in ``row``, read from CSC postings (rows ascending per
    term); 0 where the row lacks the term."""
    out = np.zeros(terms.size, dtype=np.float64)
    for i, t in enumerate(terms.tolist()):
        a, b = int(indptr[t]), int(indptr[t + 1])
        pos = a + int(np.searchsorted(indices[a:b], row))
        if pos < b and int(indices[pos]) == row:
            out[i] = float(data[pos])
    return out


def feedback_query(rows_terms: Sequence[tuple[np.ndarray, np.ndarray]], exclude: np.ndarray,
                   n_terms: int) -> tuple[np.ndarray, np.ndarray]:
    """``(terms, weights)`` of the expansion query: per feedback row ``(term ids, BM25 weights)``, each row's
    weights L1-normalised and summed; the ``exclude`` terms (the query's own) dropped; the ``n_terms`` heaviest
    kept (ties: lower term id), their weights summing to 1. Empty when no row has a positive weight."""
    total: dict[int, float] = {}
    skip = set(np.asarray(exclude).tolist())
    for terms, weights in rows_terms:
        mass = float(np.sum(weights))
        if mass <= 0:
            continue
        for t, w in zip(terms.tolist(), (np.asarray(weights) / mass).tolist(), strict=True):
            if w > 0 and t not in skip:
                total[t] = total.get(t, 0.0) + w
    if not total:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    ranked = sorted(total.items(), key=lambda tw: (-tw[1], tw[0]))[:n_terms]
    terms = np.array([t for t, _ in ranked], dtype=np.int64)
    weights = np.array([w for _, w in ranked], dtype=np.float64)
    return terms, (weights / weights.sum()).astype(np.float32)


def mix_sparse(original: Sparse, expansion: Sparse, weight: float) -> Sparse:
    """``(1 - weight) * original + weight * scale * expansion`` over the union of their rows, with ``scale`` =
    the original's best score / the expansion's (0 when either is empty)."""
    rows_o, vals_o = original
    rows_e, vals_e = expansion
    if rows_e.size == 0 or rows_o.size == 0 or float(vals_e.max()) <= 0:
        return original
    scale = float(vals_o.max()) / float(vals_e.max())
    rows = np.union1d(rows_o, rows_e)
    mixed = (1 - weight) * lookup(original, rows).astype(np.float64) \
        + weight * scale * lookup(expansion, rows).astype(np.float64)
    return rows, mixed.astype(np.float32)


def rocchio(query: np.ndarray, feedback: np.ndarray, weight: float) -> np.ndarray:
    """``query + weight * mean(feedback rows)`` (float32; the query alone when there is no feedback row)."""
    if feedback.shape[0] == 0:
        return np.asarray(query, dtype=np.float32)
    return (np.asarray(query, dtype=np.float64) + weight * np.asarray(feedback, dtype=np.float64).mean(axis=0)
            ).astype(np.float32)


class FeedbackBM25Leg:
    """A BM25 leg whose fusion candidates come from the feedback-expanded query (``FusionConfig.feedback_*``);
    ``top`` (the leg searched alone) is the plain query's. ``row_texts(rows)`` gives the indexed text of rows
    (the fields the BM25 index was built on), which is analysed to find each feedback row's terms."""

    kind = "bm25"

    def __init__(self, leg: BM25Leg, row_texts: Callable[[np.ndarray], list[str]], config: FusionConfig) -> None:
        self.name = leg.name
        self.leg = leg
        self.index = index = leg.index
        self.row_texts = row_texts
        self.docs = config.bm25_feedback_docs
        self.terms = config.bm25_feedback_terms
        self.weight = config.bm25_feedback_weight
        s = index.model.scores
        self._csc = (np.asarray(s["indptr"]), np.asarray(s["indices"]), np.asarray(s["data"]))

    def expanded(self, query: str, mask: np.ndarray | None) -> Sparse:
        """The query's sparse BM25 scores mixed with its feedback expansion's."""
        sparse = self.index.sparse_scores(query)
        fb_rows, _ = top_sparse(sparse, self.docs, mask)
        if fb_rows.size == 0:
            return sparse
        vocab = self.index.vocab
        rows_terms = []
        for row, text in zip(fb_rows.tolist(), self.row_texts(fb_rows), strict=True):
            analyzed = self.index.tokenizer.analyze(text)
            ids = np.unique(np.fromiter((vocab[t] for t in analyzed if t in vocab), dtype=np.int64))
            rows_terms.append((ids, row_term_weights(*self._csc, row, ids)))
        terms, weights = feedback_query(rows_terms, self.index.term_ids(query), self.terms)
        if terms.size == 0:
            return sparse
        return mix_sparse(sparse, self.index.weighted_sparse_scores(terms, weights), self.weight)

    def candidates(self, queries: Sequence[str], depth: int, mask: np.ndarray | None) -> list[Candidates]:
        out = []
        for query in queries:
            sparse = self.expanded(query, mask)
            rows, scores = top_sparse(sparse, depth, mask)
            out.append(Candidates(rows, scores, partial(lookup, sparse), partial(self.leg.rare_missing, query)))
        return out

    def top(self, queries: Sequence[str], k: int, mask: np.ndarray | None) -> list[Rows]:
        return self.leg.top(queries, k, mask)


class FeedbackDenseLeg:
    """A dense leg whose fusion candidates come from the Rocchio-expanded query vector
    (``FusionConfig.dense_feedback_*``); ``top`` (the leg searched alone) is the plain query's."""

    kind = "dense"

    def __init__(self, leg: DenseLeg, config: FusionConfig) -> None:
        self.name = leg.name
        self.leg = leg
        self.docs = config.dense_feedback_docs
        self.weight = config.dense_feedback_weight

    def candidates(self, queries: Sequence[str], depth: int, mask: np.ndarray | None) -> list[Candidates]:
        leg = self.leg
        vectors = leg.encode(queries)
        index = leg.index
        first = leg.search(vectors, self.docs, mask)
        expanded = np.stack([rocchio(v, np.asarray(index.vectors[np.sort(rows)]), self.weight)
                             for v, (rows, _) in zip(vectors, first, strict=True)])
        return [Candidates(rows, scores, partial(exact_scores, index, vector))
                for (rows, scores), vector in zip(leg.search(expanded, depth, mask), expanded, strict=True)]

    def top(self, queries: Sequence[str], k: int, mask: np.ndarray | None) -> list[Rows]:
        return self.leg.top(queries, k, mask)
