"""Fusion of ranked lists and scores, as small pure functions on numpy arrays.

Rows are corpus row numbers (the doc index shared by BM25 and FAISS). Every ranking sorts by score
descending and breaks ties by the lower row, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "rank",
    "normalize",
    "weighted_fusion",
    "rrf_fusion",
    "union_rows",
    "best_per_document",
    "rare_term_missing",
]


def rank(rows: np.ndarray, scores: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``rows``/``scores`` sorted best first (ties: lower row first), cut to ``k``."""
    order = np.lexsort((rows, -np.asarray(scores, dtype=np.float64)))
    if k is not None:
        order = order[:k]
    return rows[order].astype(np.int64), np.asarray(scores, dtype=np.float32)[order]


def normalize(scores: np.ndarray, method: str) -> np.ndarray:
    """Scores on a comparable scale: ``minmax`` → [0, 1], ``zscore`` → mean 0 / sd 1, ``none`` → as is.

    A constant score vector carries no ranking information and normalises to zeros.
    """
    s = np.asarray(scores, dtype=np.float64)
    if method == "none" or s.size == 0:
        return s
    if method == "minmax":
        lo, hi = s.min(), s.max()
        return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
    if method == "zscore":
        sd = s.std()
        return (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
    raise ValueError(f"unknown normalization {method!r}")


def weighted_fusion(
    scores: Sequence[np.ndarray], weights: Sequence[float], normalization: str
) -> np.ndarray:
    """``sum_i w_i * normalize(scores_i)`` where every ``scores_i`` covers the same candidate rows."""
    if len(scores) != len(weights):
        raise ValueError("one weight per score vector")
    fused = np.zeros(len(scores[0]) if scores else 0, dtype=np.float64)
    for s, w in zip(scores, weights, strict=True):
        if w:
            fused += w * normalize(s, normalization)
    return fused


def rrf_fusion(
    rankings: Sequence[np.ndarray], k: int = 60, weights: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion: ``score(row) = sum_i w_i / (k + rank_i(row))`` with ranks starting at 1.

    Returns all rows that appear in any ranking, best first (ties: lower row).
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    total: dict[int, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        if not w:
            continue
        for position, row in enumerate(np.asarray(ranking).tolist(), start=1):
            total[row] = total.get(row, 0.0) + w / (k + position)
    rows = np.fromiter(total.keys(), dtype=np.int64, count=len(total))
    vals = np.fromiter(total.values(), dtype=np.float64, count=len(total))
    return rank(rows, vals)


def union_rows(*row_lists: np.ndarray) -> np.ndarray:
    """Sorted unique rows of several candidate lists."""
    if not row_lists:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate([np.asarray(r, dtype=np.int64) for r in row_lists]))


def best_per_document(doc_ids: Sequence[str], k: int | None = None) -> list[int]:
    """Positions of each document's first (= best, for a ranked list) chunk, in ranked order, cut to ``k``.

    Document-level aggregation by max: a document scores what its best chunk scores.
    """
    seen: set[str] = set()
    keep: list[int] = []
    for i, doc in enumerate(doc_ids):
        if doc not in seen:
            seen.add(doc)
            keep.append(i)
            if k is not None and len(keep) >= k:
                break
    return keep


def rare_term_missing(term_rows: Sequence[np.ndarray], df: np.ndarray, n_rows: int, max_share: float,
                      pool: np.ndarray) -> np.ndarray:
    """Per ``pool`` row, the share of the query's rare-term idf mass that the row lacks.

    ``term_rows[i]`` are the (sorted) rows containing query term ``i``, ``df[i]`` their number. A term is rare
    when it occurs in at most ``max_share`` of the ``n_rows`` rows; its weight is the BM25 (Lucene) idf. A row
    with every rare term, or any row of a query without one, lacks 0; a row with none lacks 1.
    """
    df = np.asarray(df, dtype=np.float64)
    rare = [i for i in range(len(term_rows)) if 0 < df[i] <= max_share * n_rows]
    out = np.zeros(pool.size, dtype=np.float64)
    if not rare:
        return out
    idf = np.log1p((n_rows - df[rare] + 0.5) / (df[rare] + 0.5))
    for i, w in zip(rare, idf.tolist(), strict=True):
        out += w * np.isin(pool, term_rows[i], assume_unique=False)
    return 1.0 - out / idf.sum()
