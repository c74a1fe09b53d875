"""Exact dynamic pruning (MaxScore) of BM25 top-k; numba kernels used by ``bm25_query``.

``search_pruned`` returns exactly what ``_bm25_kernel.search`` returns (same rows, same float32 scores, same
order, ties to the lower row) while reading only part of the postings of most queries.

MaxScore: the query's terms are ordered by their upper bound (``ub[term] * weight``, ``ub`` the largest posting
value of the term). Once the top ``k`` is full, the lowest-bound terms whose bounds together cannot reach its
``k``-th score are "non-essential": only the other (essential) terms' rows are candidates, and a non-essential
list is read only where a candidate could be.

Rows are visited in ascending windows of ``_WINDOW`` rows (document-at-a-time by window, as Lucene's
MaxScoreBulkScorer; windows without an essential posting are skipped): per window the essential postings mark
the candidates, then every term in the QUERY's order adds its postings at candidate rows into a window
accumulator (a non-essential list is reached by galloping and scanned only inside the window), then the
candidates go to the top ``k``. Per-row probing of the non-essential lists was measured slower than scanning
them per window (branch-heavy), so it is not done.

Exactness: a term becomes non-essential only when the bounds of it and every lower-bound term, summed in
float64 and widened by ``1 + (n + 2) * 2**-23`` (``n`` terms: more than the float32 rounding of ``n`` additions
and of ``data * weight``), are STRICTLY below the current ``k``-th score, so a row that could tie it is never
dropped. A candidate's score is built exactly as ``accumulate`` builds it: float32 from 0, each present term's
contribution (``data`` if the weight is 1, else ``data * weight`` in float32) added in the query's term order.
Needs ``data >= 0`` (the caller passes no bounds otherwise) and positive weights (checked here).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._bm25_kernel import accumulate, insert, search, search_batch

__all__ = ["accumulate", "search", "search_batch", "maxscore", "search_pruned", "search_pruned_batch"]

_END = np.iinfo(np.int64).max  # "no more rows" (a row number never reaches it)
_TINY = 2.0**-149  # float32's smallest subnormal: covers an underflowing ``data * weight`` in a bound
# rows per window: the window's accumulator (float32) and marks stay in the L2 cache; measured best of
# 4096..32768 at 1M and 2M rows
_WINDOW = 16384


@njit(cache=True, nogil=True, inline="always")
def _seek(indices, lo, hi, row):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The first position ``p`` in ``lo..hi-1`` with ``indices[p] >= row`` (``hi`` if none); ``indices`` is
    ascending there. Galloping from ``lo``, then binary search: cost logarithmic in the distance moved."""
    if lo >= hi or indices[lo] >= row:
        return lo
    below, step = lo, 1  # indices[below] < row
    probe = lo + 1
    while probe < hi and indices[probe] < row:
        below = probe
        step *= 2
        probe = below + step
    top = min(probe, hi)  # indices[top] >= row, or top == hi
    low = below + 1
    while low < top:
        mid = (low + top) >> 1
        if indices[mid] < row:
            low = mid + 1
        else:
            top = mid
    return low


@njit(cache=True, nogil=True)
def _plan(indptr, terms, weights, ub):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Per query term ``i`` (query order): posting cursor ``pos``/``end`` and float32 weight; ``order``: term
    indices by ascending bound (``ub * weight``, exact in float64, plus ``_TINY``); ``pre[j]``: the float64 sum
    of the bounds of ``order[0..j]``."""
    n = terms.shape[0]
    pos = np.empty(n, np.int64)
    end = np.empty(n, np.int64)
    w32 = np.empty(n, np.float32)
    bound = np.empty(n, np.float64)
    order = np.empty(n, np.int64)
    for i in range(n):
        t = terms[i]
        pos[i] = indptr[t]
        end[i] = indptr[t + 1]
        w32[i] = np.float32(weights[i])
        bound[i] = np.float64(ub[t]) * np.float64(w32[i]) + _TINY
        j = i  # insertion sort (queries have few terms)
        while j > 0 and bound[order[j - 1]] > bound[i]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = i
    pre = np.empty(n, np.float64)
    total = 0.0
    for j in range(n):
        total += bound[order[j]]
        pre[j] = total
    return pos, end, w32, order, pre


@njit(cache=True, nogil=True, inline="always")
def _next_row(indices, pos, end, order, e):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The lowest current row of the essential terms ``order[e:]`` (``_END`` when all are exhausted)."""
    nxt = _END
    for j in range(e, order.shape[0]):
        i = order[j]
        if pos[i] < end[i] and indices[pos[i]] < nxt:
            nxt = indices[pos[i]]
    return nxt


@njit(cache=True, nogil=True, inline="always")
def _mark(indices, pos, end, order, e, base, lim, wend, seen, cand, mask):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Mark (``seen``, offsets from ``base`` listed once each in ``cand``) the rows ``base..lim-1`` of the
    essential terms ``order[e:]`` that ``mask`` allows (all if it is empty); ``wend[i]``: the end of term
    ``i``'s postings in the window. Returns the number of candidates."""
    use_mask = mask.shape[0] > 0
    nc = 0
    for j in range(e, order.shape[0]):
        i = order[j]
        p, hi = pos[i], end[i]
        while p < hi:
            r = indices[p]
            if r >= lim:
                break
            off = r - base
            if seen[off] == 0 and not (use_mask and not mask[r]):
                seen[off] = 1
                cand[nc] = off
                nc += 1
            p += 1
        wend[i] = p
    return nc


@njit(cache=True, nogil=True, inline="always")
def _add(indices, data, pos, end, w32, ess, base, lim, wend, wacc, seen):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Every term in query order adds its window postings at marked rows into ``wacc`` (offsets from ``base``)
    as ``accumulate`` does: an essential term's are ``pos[i]..wend[i]-1``, a non-essential one's are reached by
    galloping to ``base``. Cursors move to the window's end."""
    for i in range(pos.shape[0]):
        w = w32[i]
        if ess[i]:
            for p in range(pos[i], wend[i]):
                off = indices[p] - base
                if seen[off]:
                    wacc[off] += data[p] if w == 1.0 else data[p] * w
            pos[i] = wend[i]
            continue
        hi = end[i]
        p = _seek(indices, pos[i], hi, base)
        while p < hi and indices[p] < lim:
            off = indices[p] - base
            if seen[off]:
                wacc[off] += data[p] if w == 1.0 else data[p] * w
            p += 1
        pos[i] = p


@njit(cache=True, nogil=True, inline="always")
def _collect(wacc, seen, cand, nc, base, k, m, out_rows, out_scores):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Offer the window's candidates to the top ``k``; zero ``wacc`` and ``seen`` at them again. Returns the new
    count."""
    for q in range(nc):
        off = cand[q]
        s = wacc[off]
        wacc[off] = 0.0
        seen[off] = 0
        row = base + off
        if s > 0.0 and (m < k or s >= out_scores[k - 1]):
            m = insert(out_rows, out_scores, m, k, row, s)
    return m


@njit(cache=True, nogil=True)
def maxscore(indptr, indices, data, terms, weights, ub, acc, rows, seen, mask, k, out_rows, out_scores):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``search``'s top ``k`` (``k >= 1``; same rows, scores, order and count) by windowed MaxScore (module
    docstring). ``ub[t]`` must bound every posting value of term ``t``; ``data >= 0``; ``weights > 0``.
    ``acc``/``seen`` (all zeros, left so) and ``rows`` are ``search``'s per-row buffers, used per window."""
    n = terms.shape[0]
    pos, end, w32, order, pre = _plan(indptr, terms, weights, ub)
    wend = np.empty(n, np.int64)
    ess = np.ones(n, np.bool_)
    margin = 1.0 + (n + 2) * 2.0**-23
    m, e = 0, 0
    base = _next_row(indices, pos, end, order, 0)
    while base != _END:
        lim = base + _WINDOW
        nc = _mark(indices, pos, end, order, e, base, lim, wend, seen, rows, mask)
        _add(indices, data, pos, end, w32, ess, base, lim, wend, acc, seen)
        m = _collect(acc, seen, rows, nc, base, k, m, out_rows, out_scores)
        if m == k:
            theta = out_scores[k - 1]
            while e < n and pre[e] * margin < theta:  # STRICT: a row that could tie theta stays
                ess[order[e]] = False
                e += 1
            if e == n:  # even a row holding every term cannot reach theta any more
                break
        base = _next_row(indices, pos, end, order, e)
    return m


@njit(cache=True, nogil=True)
def _worth_pruning(indptr, terms, weights, ub, k, min_postings, max_terms):  # type: ignore[no-untyped-def]  # pragma: no cover
    """True when MaxScore is exact here and likely to pay: bounds given (non-negative data), ``1 <= k``,
    ``2 <= terms <= max_terms``, every weight positive, and at least ``min_postings`` postings in all."""
    n = terms.shape[0]
    if ub.shape[0] == 0 or k < 1 or n < 2 or n > max_terms:
        return False
    total = 0
    for i in range(n):
        if not weights[i] > 0.0:  # NaN or <= 0: the bounds would not hold
            return False
        total += indptr[terms[i] + 1] - indptr[terms[i]]
    return total >= min_postings


@njit(cache=True, nogil=True)
def search_pruned(indptr, indices, data, terms, weights, ub, min_postings, max_terms, acc, rows, seen, mask, k, out_rows, out_scores):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``search``'s result, identical; by ``maxscore`` when ``_worth_pruning``, else by ``search`` itself.
    ``ub`` is the per-term bound array (empty: never prune). Releases the GIL."""
    if _worth_pruning(indptr, terms, weights, ub, k, min_postings, max_terms):
        return maxscore(indptr, indices, data, terms, weights, ub, acc, rows, seen, mask, k, out_rows, out_scores)
    return search(indptr, indices, data, terms, weights, acc, rows, seen, mask, k, out_rows, out_scores)


@njit(cache=True, nogil=True)
def search_pruned_batch(indptr, indices, data, starts, terms, weights, ub, min_postings, max_terms, acc, rows, seen, mask, k, lo, hi, out_rows, out_scores, counts):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``search_batch`` with ``search_pruned`` per query: identical results (see ``search_batch``)."""
    for q in range(lo, hi):
        a, b = starts[q], starts[q + 1]
        counts[q] = search_pruned(indptr, indices, data, terms[a:b], weights[a:b], ub, min_postings, max_terms,
                                  acc, rows, seen, mask, k, out_rows[q], out_scores[q])
