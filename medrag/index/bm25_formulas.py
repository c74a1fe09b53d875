"""BM25 scoring formulas as small pure functions on numpy arrays (no bm25s internals).

``idf(df, n_docs, method)`` and ``term_weight(tf, doc_len, avg_len, k1, b, method)`` give the per (document,
term) score ``idf * term_weight`` that a BM25 index stores; a query's score is the sum over its terms. Variants
follow Kamphuis et al. (ECIR 2020, "Which BM25 do you mean?") as bm25s names them:

=========== ============================================ ==============================================
method      idf                                          term weight
=========== ============================================ ==============================================
robertson   log((N - df + 0.5) / (df + 0.5)), floored 0  tf / (k1 * (1 - b + b * dl / avgdl) + tf)
lucene      log(1 + (N - df + 0.5) / (df + 0.5))         tf / (k1 * (1 - b + b * dl / avgdl) + tf)
atire       log(N / df)                                  tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
=========== ============================================ ==============================================

rank-bm25's BM25Okapi is ``atire`` term weights with ``robertson`` idf. ``idf`` is computed in float64 and
returned as float32, ``term_weight`` in the dtype of ``tf`` (float32), matching bm25s array for array.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METHODS", "idf", "term_weight"]

METHODS = ("robertson", "lucene", "atire")


def idf(df: np.ndarray, n_docs: int, method: str) -> np.ndarray:
    """Inverse document frequency of each term from its document frequency ``df`` (float32)."""
    d = np.asarray(df, dtype=np.float64)
    n = float(n_docs)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "robertson":
            out = np.log(np.maximum((n - d + 0.5) / (d + 0.5), 1.0))
        elif method == "lucene":
            out = np.log(1.0 + (n - d + 0.5) / (d + 0.5))
        elif method == "atire":
            out = np.where(d > 0, np.log(n / np.where(d > 0, d, 1.0)), 0.0)
        else:
            raise ValueError(f"unknown BM25 idf method {method!r}; known: {', '.join(METHODS)}")
    return np.where(d > 0, out, 0.0).astype(np.float32)  # a term no document holds scores nothing


def term_weight(tf: np.ndarray, doc_len: np.ndarray, avg_len: float, k1: float, b: float,
                method: str) -> np.ndarray:
    """The term-frequency component of each (document, term) pair: ``tf`` occurrences in a document of
    ``doc_len`` terms when documents average ``avg_len`` terms."""
    norm = k1 * ((1 - b) + b * doc_len / avg_len)
    if method in ("robertson", "lucene"):
        return tf / (norm + tf)
    if method == "atire":
        return (tf * (k1 + 1)) / (tf + norm)
    raise ValueError(f"unknown BM25 method {method!r}; known: {', '.join(METHODS)}")
