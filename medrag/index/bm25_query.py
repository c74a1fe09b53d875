"""BM25 query scoring: work proportional to the query's postings, bounded by design.

A query becomes distinct vocabulary terms with weights (a repeated term counts ``n`` times its score, as in
bm25s and rank-bm25, but its postings are read once). Scores are accumulated into a per-thread dense buffer
the size of the corpus that is never scanned: only the rows a posting touched are read back and reset, so
the cost of a query is its postings plus a top-k over the rows they touched, whatever the corpus size.

Top-k queries on large corpora are pruned (exact MaxScore, ``_bm25_prune``: results identical to the
exhaustive kernel): once the top k is full, rows holding only terms whose bounds cannot reach it are not scored,
and those terms' postings are read only in row windows that have candidates. The per-term bounds it needs are
written by every build (``bm25_bounds``) and memory-mapped; for an index without them they are computed in
memory on first use (``PostingScorer.bounds``).

Bounds (issue 15): a query longer than ``MAX_QUERY_CHARS`` characters is a ``QueryError``; at most
``MAX_QUERY_TERMS`` distinct terms are scored (the first ones in query order), so one request's work is
bounded by that many posting lists.

Query words are resolved to term ids once per distinct word (``QueryTerms``); a batch's terms are kept as one
flat array. Batches (``PostingScorer.top_flat``) are scored in one kernel call per thread: the batch is cut into
``threads`` contiguous parts, one runs on the calling thread and the others on a shared pool; the numba
kernel releases the GIL, so the parts run on separate cores.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

import numpy as np

from ..errors import QueryError
from .bm25_bounds import term_bounds
from .tokenizer import BiomedicalTokenizer

__all__ = ["MAX_QUERY_CHARS", "MAX_QUERY_TERMS", "QueryTerms", "PostingScorer", "top_rows", "term_bounds",
           "default_threads"]

MAX_QUERY_CHARS = 100_000
MAX_QUERY_TERMS = 1024


def check_length(query: str) -> None:
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"query has {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,} (shorten it)")


class QueryTerms:
    """Text -> (distinct term ids in first-occurrence order, float32 weights = repeat counts).

    A word's term id depends on the word alone (stopword check, stemming, vocabulary lookup: ``analyze``'s
    rules), so each distinct surface word is resolved once and remembered (``_ids``, at most ``_MAX_WORDS``
    entries; cleared when full): a query's words are then looked up with one C-level ``map``.
    """

    def __init__(self, tokenizer: BiomedicalTokenizer, vocab: Mapping[str, int]) -> None:
        self.tokenizer = tokenizer
        self.vocab = vocab
        #: surface word -> term id, or -1 for a stopword or a term the vocabulary lacks
        self._ids: dict[str, int] = {}

    def __call__(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        counts = self._counts(query)
        terms = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        weights = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        return terms, weights

    def many(self, queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(starts, terms, weights)``: every query's ``__call__`` concatenated; query ``q``'s terms are
        ``terms[starts[q]:starts[q + 1]]``. Every query is length-checked before any result is returned."""
        per_query = [self._counts(q) for q in queries]
        starts = np.zeros(len(per_query) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, per_query), dtype=np.int64, count=len(per_query)), out=starts[1:])
        total = int(starts[-1])
        terms = np.fromiter(chain.from_iterable(per_query), dtype=np.int64, count=total)
        weights = np.fromiter(chain.from_iterable(c.values() for c in per_query), dtype=np.float32, count=total)
        return starts, terms, weights

    def _counts(self, query: str) -> dict[int, int]:
        """Distinct known term ids of ``query`` (first-occurrence order) -> how often each occurs."""
        check_length(query)
        words = self.tokenizer.words(query)
        found = list(map(self._ids.get, words))
        ids: list[int] = self._resolve(words) if None in found else found  # type: ignore[assignment]
        counts: dict[int, int] = {}
        for i in ids:
            if i >= 0:
                counts[i] = counts.get(i, 0) + 1
        if len(counts) > MAX_QUERY_TERMS:
            return dict(list(counts.items())[:MAX_QUERY_TERMS])
        return counts

    def _resolve(self, words: list[str]) -> list[int]:
        """Term ids of ``words``, resolving (and remembering) the words not seen before."""
        known = self._ids
        if len(known) > _MAX_WORDS:
            known.clear()
        stopwords, stem, vocab = self.tokenizer.stopwords, self.tokenizer.stem, self.vocab
        out = []
        for word in words:
            tid = known.get(word)
            if tid is None:
                found = None if word in stopwords else vocab.get(stem(word) if stem is not None else word)
                tid = known[word] = -1 if found is None else found
            out.append(tid)
        return out


_MAX_WORDS = 1 << 16  # distinct query words remembered per index (≈ 10 MB at most)


class PostingScorer:
    """Sparse BM25 scores from the CSC arrays (``indptr``, ``indices``, ``data``) of a bm25s index."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, num_docs: int,
                 bounds: np.ndarray | None = None) -> None:
        # plain ndarray views of the (memory-mapped) arrays: memmap subclass slicing is slower
        self.indptr = np.asarray(indptr)
        self.indices = np.asarray(indices)
        self.data = np.asarray(data)
        self.num_docs = num_docs
        self._local = threading.local()
        # per-term bounds for pruning (``bounds``): given (persisted, ``bm25_bounds``) or computed on first use;
        # kept read-only either way, so the numba kernels see one array type
        self._ub: np.ndarray | None = None if bounds is None else _read_only(bounds)
        self._ub_lock = threading.Lock()

    def bounds(self) -> np.ndarray:
        """``term_bounds`` of this index: the bounds given (persisted with the index), else computed once, on
        first use (in memory only)."""
        ub = self._ub
        if ub is None:
            with self._ub_lock:
                if self._ub is None:
                    self._ub = _read_only(term_bounds(self.indptr, self.data))
                ub = self._ub
        return ub

    def _prune_bounds(self) -> np.ndarray:
        """The bounds the pruned kernels get: empty (never prune) for a corpus under ``_PRUNE_MIN_DOCS`` rows."""
        return self.bounds() if self.num_docs >= _PRUNE_MIN_DOCS else _NO_BOUNDS

    def _buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """This thread's score accumulator (all zeros between queries) and row scratch, one slot per row."""
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            bufs = (np.zeros(self.num_docs, dtype=np.float32), np.zeros(self.num_docs, dtype=np.int32))
            self._local.bufs = bufs
        return bufs

    def _seen(self) -> np.ndarray:
        seen = getattr(self._local, "seen", None)
        if seen is None:
            seen = self._local.seen = np.zeros(self.num_docs, dtype=np.uint8)
        return seen

    def score(self, terms: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)`` of every row sharing a term; rows unique but NOT sorted."""
        kernels = _kernels()
        if kernels is not None:
            acc, slot = self._buffers()
            n = kernels.accumulate(self.indptr, self.indices, self.data, terms, weights, acc, slot, self._seen())
            touched = slot[:n].astype(np.int64)
            scores = acc[touched]
            acc[touched] = 0.0
            return touched, scores
        return self._score_numpy(terms, weights)

    def top(
        self, terms: np.ndarray, weights: np.ndarray, k: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``top_rows(*self.score(terms, weights), k, mask)``, fused into one numba call for small ``k``; with
        numba the call may prune (MaxScore, ``_bm25_prune``), with results identical to exhaustive scoring."""
        kernels = _kernels()
        if kernels is None or k > _SMALL_K:
            return top_rows(*self.score(terms, weights), k, mask)
        acc, slot = self._buffers()
        rows, scores = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.float32)
        use_mask, ub = _NO_MASK if mask is None else mask, self._prune_bounds()
        if ub.size:
            m = kernels.search_pruned(self.indptr, self.indices, self.data, terms, weights, ub, _PRUNE_MIN_POSTINGS,
                                      _PRUNE_MAX_TERMS, acc, slot, self._seen(), use_mask, k, rows, scores)
        else:  # never prunes: the exhaustive kernel alone (the pruned one compiles in seconds, on first use)
            m = kernels.search(self.indptr, self.indices, self.data, terms, weights, acc, slot, self._seen(),
                               use_mask, k, rows, scores)
        return rows[:m], scores[:m]

    def top_flat(
        self, starts: np.ndarray, terms: np.ndarray, weights: np.ndarray, k: int, mask: np.ndarray | None = None,
        threads: int | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``top`` of each query of a batch given flat (``QueryTerms.many``): query ``q``'s terms and weights are
        ``terms[starts[q]:starts[q + 1]]`` and ``weights[...]``; the batch is scored on up to ``threads`` cores
        (None: all)."""
        kernels = _kernels()
        n = len(starts) - 1
        if kernels is None or k > _SMALL_K or n < 2:
            spans = zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)
            return [self.top(terms[a:b], weights[a:b], k, mask) for a, b in spans]
        out_rows = np.zeros((n, k), dtype=np.int64)
        out_scores = np.zeros((n, k), dtype=np.float32)
        counts = np.zeros(n, dtype=np.int64)
        use_mask = _NO_MASK if mask is None else mask
        ub = self._prune_bounds()

        def run(lo: int, hi: int) -> None:
            acc, slot = self._buffers()
            if ub.size:
                kernels.search_pruned_batch(self.indptr, self.indices, self.data, starts, terms, weights, ub,
                                            _PRUNE_MIN_POSTINGS, _PRUNE_MAX_TERMS, acc, slot, self._seen(),
                                            use_mask, k, lo, hi, out_rows, out_scores, counts)
            else:
                kernels.search_batch(self.indptr, self.indices, self.data, starts, terms, weights, acc, slot,
                                     self._seen(), use_mask, k, lo, hi, out_rows, out_scores, counts)

        parts = max(1, min(threads or default_threads(), n // _MIN_PART))
        cuts = [p * n // parts for p in range(parts + 1)]
        others = [_pool().submit(run, cuts[p], cuts[p + 1]) for p in range(1, parts)]
        run(cuts[0], cuts[1])
        for future in others:
            future.result()
        return [(out_rows[q, :m], out_scores[q, :m]) for q, m in enumerate(counts.tolist())]

    def _score_numpy(self, terms: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = self.indptr[terms]
        ends = self.indptr[terms + 1]
        live = np.flatnonzero(ends > starts)
        if live.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if live.size == 1:
            i = int(live[0])
            a, b = int(starts[i]), int(ends[i])
            vals = np.asarray(self.data[a:b])
            if weights[i] != 1:
                vals = vals * weights[i]
            return np.asarray(self.indices[a:b]).astype(np.int64), vals.astype(np.float32, copy=False)
        acc, slot = self._buffers()
        parts = []
        for i in live.tolist():
            a, b = int(starts[i]), int(ends[i])
            rows = np.asarray(self.indices[a:b])
            vals = np.asarray(self.data[a:b])
            acc[rows] += vals if weights[i] == 1 else vals * weights[i]  # rows are unique within a term
            parts.append(rows)
        touched = np.concatenate(parts)
        order = np.arange(touched.size, dtype=np.int32)
        slot[touched] = order  # the last write wins for a repeated row: keep exactly one position per row
        rows = touched[slot[touched] == order]
        scores = acc[rows]
        acc[rows] = 0.0
        return rows.astype(np.int64), scores

    def sorted_scores(self, terms: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``score`` with rows sorted ascending (for lookups by row)."""
        rows, scores = self.score(terms, weights)
        order = np.argsort(rows, kind="stable")
        return rows[order], scores[order]


def top_rows(
    rows: np.ndarray, scores: np.ndarray, k: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` positive-scored ``rows`` (allowed by ``mask``), best first; ties go to the lower row."""
    keep = scores > 0
    if mask is not None:
        keep &= mask[rows]
    if not keep.all():
        rows, scores = rows[keep], scores[keep]
    n = scores.size
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if k < n:
        kth = np.partition(scores, n - k)[n - k]  # keep every row tied with the k-th best
        cand = np.flatnonzero(scores >= kth)
        rows, scores = rows[cand], scores[cand]
    order = np.lexsort((rows, -scores.astype(np.float64)))[:k]
    return rows[order].astype(np.int64), scores[order].astype(np.float32)


_KERNELS: list[Any] = []
_SMALL_K = 64  # the fused numba top-k keeps a sorted array of k: used up to this k
_NO_MASK = np.zeros(0, dtype=bool)
_NO_BOUNDS = np.zeros(0, dtype=np.float64)
_NO_BOUNDS.flags.writeable = False
# MaxScore (``_bm25_prune``, exact) is used by the fused path (k <= _SMALL_K) for a query of 2.._PRUNE_MAX_TERMS
# terms with at least _PRUNE_MIN_POSTINGS postings in all, on a corpus of at least _PRUNE_MIN_DOCS rows; else
# the exhaustive kernel. Measured (synthetic medical corpora, 2-5 term queries, k=10): at 10k and 30k rows the
# exhaustive kernel is faster at every query size (its accumulator stays in cache); at 60k-100k rows pruning
# wins from ~2048 postings, at 1M from ~1024; past 32 terms the gain shrinks (break-even ~64 terms at 100k).
_PRUNE_MIN_DOCS = 50_000
_PRUNE_MIN_POSTINGS = 2048
_PRUNE_MAX_TERMS = 32
_MIN_PART = 8  # queries per thread below which a batch is not split
_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _read_only(bounds: np.ndarray) -> np.ndarray:
    """A read-only float64 ndarray view of ``bounds`` (a memory-mapped file's, or computed)."""
    view = np.asarray(bounds, dtype=np.float64).view()
    view.flags.writeable = False
    return view


def default_threads() -> int:
    """Threads a batch is scored on by default: every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _pool() -> ThreadPoolExecutor:
    """The shared worker threads of batch scoring (created on first use; each keeps its own buffers)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=max(1, default_threads() - 1),
                                            thread_name_prefix="medrag-bm25"))
        return _POOL[0]


def _kernels() -> Any:
    """The numba-compiled kernels module (compiled once, cached on disk), or None without numba."""
    if not _KERNELS:
        try:
            from . import _bm25_prune as kernels  # deferred: numba (the compiled kernels, pruned and not)
        except ImportError:  # numba missing or unusable here: the numpy path gives the same results
            kernels = None  # type: ignore[assignment]
        _KERNELS.append(kernels)
    return _KERNELS[0]
