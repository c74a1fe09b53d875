"""The stages a retrieval pipeline is composed of, behind small protocols.

A search runs: every **candidate generator** (a "leg": BM25, a dense encoder + FAISS, …) proposes its top rows
for each query, with a way to score any other row on its own scale; **fusion** combines the legs (one leg passes
through); an optional **re-ranker** re-scores the fused top rows from their text. Rows are corpus row numbers
shared by every leg of an index. Adding a leg or a re-ranker is a new class implementing one protocol plus its
config; the pipeline (``HybridRetriever``) does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..config import FusionConfig
from .fusion import rank, rrf_fusion, union_rows, weighted_fusion

__all__ = ["Rows", "Candidates", "CandidateGenerator", "Reranker", "Fusion"]

#: corpus rows (int64) and their scores (float32), best first
Rows = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Candidates:
    """One leg's answer to one query: its top ``rows``/``scores`` (best first) and ``rescore``, the exact
    scores of any rows for the same query on the same scale (0 for rows the leg does not match).
    ``rare_missing`` (lexical legs): for rows and a document-frequency share, the share of the query's rare-term
    weight each row lacks (``fusion.rare_term_missing``)."""

    rows: np.ndarray
    scores: np.ndarray
    rescore: Callable[[np.ndarray], np.ndarray]
    rare_missing: Callable[[np.ndarray, float], np.ndarray] | None = None

    @property
    def ranked(self) -> Rows:
        return self.rows, self.scores


@runtime_checkable
class CandidateGenerator(Protocol):
    """A leg: ``candidates(queries, depth, mask)`` -> one ``Candidates`` per query (at most ``depth`` rows,
    only rows allowed by the boolean ``mask`` when one is given), for fusion; ``top`` -> the same ranked
    rows without the means to rescore (the leg searched alone, on its fastest path)."""

    name: str
    kind: str

    def candidates(self, queries: Sequence[str], depth: int, mask: np.ndarray | None) -> list[Candidates]: ...

    def top(self, queries: Sequence[str], k: int, mask: np.ndarray | None) -> list[Rows]: ...


@runtime_checkable
class Reranker(Protocol):
    """Re-scores the top ``depth`` rows of a fused ranking from (query, passage text) pairs."""

    depth: int

    def rerank(self, query: str, rows: np.ndarray, texts: Sequence[str]) -> Rows: ...


class Fusion:
    """Combines the legs' candidates: ``weighted`` (normalised scores over the union of every leg's top
    rows, each rescored by every leg, minus the rare-term penalty) or ``rrf`` (reciprocal rank fusion), one
    weight per leg."""

    def __init__(self, config: FusionConfig, weights: Sequence[float]) -> None:
        self.config = config
        self.weights = tuple(float(w) for w in weights)

    def depth(self, k: int) -> int:
        """How many candidates each leg proposes for a final top ``k``."""
        return max(k, self.config.depth)

    def fuse(self, legs: Sequence[Candidates], k: int) -> Rows:
        if len(legs) != len(self.weights):
            raise ValueError(f"fusion got {len(legs)} legs for {len(self.weights)} weights")
        if self.config.method == "rrf":
            rows, scores = rrf_fusion([c.rows for c in legs], k=self.config.rrf_k, weights=self.weights)
            return rows[:k], scores[:k]
        pool = union_rows(*[c.rows for c in legs])
        fused = weighted_fusion([c.rescore(pool) for c in legs], self.weights, self.config.normalization)
        penalty = self.config.rare_term_penalty
        lexical = next((c.rare_missing for c in legs if c.rare_missing is not None), None)
        if penalty and lexical is not None:
            fused = fused - penalty * lexical(pool, self.config.rare_term_df)
        return rank(pool, fused, k)
