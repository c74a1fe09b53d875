"""The numba kernel of BM25 query scoring (imported only by ``bm25_query``; numba is imported here)."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["accumulate", "insert", "search", "search_batch"]


@njit(cache=True, nogil=True)
def accumulate(indptr, indices, data, terms, weights, acc, rows, seen):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Add each term's weighted postings into ``acc``; write the rows touched (each once) into ``rows``.

    ``acc`` and ``seen`` must be all zeros on entry; the caller reads ``acc[rows[:n]]`` and zeroes those
    entries of ``acc`` again (``seen`` is reset here). Returns ``n``, the number of rows touched. Releases
    the GIL, so threads can score different queries in parallel.
    """
    n = 0
    for t in range(terms.shape[0]):
        term = terms[t]
        w = np.float32(weights[t])
        for p in range(indptr[term], indptr[term + 1]):
            row = indices[p]
            if seen[row] == 0:
                seen[row] = 1
                rows[n] = row
                n += 1
            acc[row] += data[p] if w == 1.0 else data[p] * w
    for i in range(n):
        seen[rows[i]] = 0
    return n


@njit(cache=True, nogil=True)
def search(indptr, indices, data, terms, weights, acc, rows, seen, mask, k, out_rows, out_scores):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``accumulate``, then the top ``k`` positive rows (allowed by ``mask`` unless it is empty) into
    ``out_rows``/``out_scores``, best first, ties to the lower row; ``acc`` is zeroed again. Returns the count.
    """
    n = accumulate(indptr, indices, data, terms, weights, acc, rows, seen)
    m = 0
    use_mask = mask.shape[0] > 0
    for i in range(n):
        row = rows[i]
        s = acc[row]
        acc[row] = 0.0
        if s <= 0.0 or (use_mask and not mask[row]):
            continue
        if m == k and (s < out_scores[m - 1] or (s == out_scores[m - 1] and row > out_rows[m - 1])):
            continue  # the common case once the top k is full: decided here without a call
        m = insert(out_rows, out_scores, m, k, row, s)
    return m


@njit(cache=True, nogil=True)
def insert(out_rows, out_scores, m, k, row, s):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Offer ``(row, s)`` to the top ``m`` of at most ``k`` held in ``out_rows``/``out_scores`` (best first, ties
    to the lower row; only positive scores enter). Returns the new count."""
    if s <= 0.0:
        return m
    if m == k and (s < out_scores[m - 1] or (s == out_scores[m - 1] and row > out_rows[m - 1])):
        return m
    j = m if m < k else k - 1  # insertion position search from the end (k is small)
    while j > 0 and (out_scores[j - 1] < s or (out_scores[j - 1] == s and out_rows[j - 1] > row)):
        if j < k:
            out_scores[j] = out_scores[j - 1]
            out_rows[j] = out_rows[j - 1]
        j -= 1
    out_scores[j] = s
    out_rows[j] = row
    return m + 1 if m < k else m


@njit(cache=True, nogil=True)
def search_batch(indptr, indices, data, starts, terms, weights, acc, rows, seen, mask, k, lo, hi, out_rows, out_scores, counts):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``search`` for queries ``lo..hi-1`` of a batch: query ``q``'s terms/weights are
    ``terms[starts[q]:starts[q + 1]]``; its top rows go to ``out_rows[q]``/``out_scores[q]``, their number to
    ``counts[q]``. One call (GIL released) per thread and batch part."""
    for q in range(lo, hi):
        a, b = starts[q], starts[q + 1]
        counts[q] = search(indptr, indices, data, terms[a:b], weights[a:b], acc, rows, seen, mask, k,
                           out_rows[q], out_scores[q])
