"""BM25 MaxScore pruning: bit-identical to exhaustive scoring (rows, float32 scores, order, count)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from medrag.index import _bm25_prune as K  # noqa: E402
from medrag.index import bm25_query  # noqa: E402
from medrag.index.bm25_query import PostingScorer, term_bounds, top_rows  # noqa: E402

NO_MASK = np.zeros(0, dtype=bool)


def _csc(rng, num_docs, num_terms, max_len, steps=4):
    """Random CSC postings (rows ascending per term, some terms empty) with quantised values: many ties."""
    lens = rng.integers(0, min(max_len, num_docs) + 1, size=num_terms)
    lens[rng.random(num_terms) < 0.1] = 0
    indptr = np.zeros(num_terms + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(lens)
    parts = [np.sort(rng.choice(num_docs, size=int(n), replace=False)) for n in lens]
    indices = np.concatenate(parts).astype(np.int32) if indptr[-1] else np.zeros(0, dtype=np.int32)
    scale = np.float32(rng.choice([1.0, 0.37, 3.1]))
    data = (rng.integers(0, 4 * steps + 1, size=indices.size) / steps).astype(np.float32) * scale
    return indptr, indices, data


def _query(rng, num_terms, n):
    terms = rng.choice(num_terms, size=min(n, num_terms), replace=False).astype(np.int64)
    ones = rng.random() < 0.5
    weights = np.ones(terms.size, np.float32) if ones else rng.integers(1, 4, size=terms.size).astype(np.float32)
    return terms, weights


def _same(a, b):
    (rows_a, scores_a), (rows_b, scores_b) = a, b
    return (rows_a.tolist() == rows_b.tolist()
            and np.asarray(scores_a, np.float32).view(np.int32).tolist()
            == np.asarray(scores_b, np.float32).view(np.int32).tolist())


def _run(kernel, args, k):
    rows, scores = np.zeros(k, np.int64), np.zeros(k, np.float32)
    m = kernel(*args, k, rows, scores)
    return rows[:m], scores[:m]


@pytest.mark.parametrize("seed", range(6))
def test_maxscore_equals_exhaustive_on_random_postings(seed):
    rng = np.random.default_rng(seed)
    for case in range(12):
        num_docs = int(rng.choice([50, 3000, 40_000])) if case % 3 else int(rng.integers(1, 400))
        num_terms = int(rng.integers(1, 40))
        indptr, indices, data = _csc(rng, num_docs, num_terms, int(rng.choice([20, 600, 4000])),
                                     steps=int(rng.choice([1, 4, 16])))
        ub = term_bounds(indptr, data)
        acc, slot, seen = np.zeros(num_docs, np.float32), np.zeros(num_docs, np.int32), np.zeros(num_docs, np.uint8)
        for _ in range(12):
            terms, weights = _query(rng, num_terms, int(rng.choice([1, 2, 3, 5, 24])))
            k = int(rng.choice([1, 3, 10, 64]))
            mask = rng.random(num_docs) < rng.choice([0.05, 0.5]) if rng.random() < 0.4 else NO_MASK
            common = (indptr, indices, data, terms, weights)
            want = _run(K.search, (*common, acc, slot, seen, mask), k)
            got = _run(K.maxscore, (*common, ub, acc, slot, seen, mask), k)
            assert _same(got, want), (seed, case, terms.tolist(), weights.tolist(), k)
            assert not acc.any() and not seen.any()  # the shared buffers are left clean
            via = _run(K.search_pruned, (*common, ub, 0, 1024, acc, slot, seen, mask), k)
            assert _same(via, want)


def test_several_windows_ties_and_a_rising_threshold():
    """Long and short lists over more rows than one window, values with many exact ties."""
    rng = np.random.default_rng(42)
    num_docs = 100_000
    lens = [60_000, 20_000, 3_000, 500, 40, 0]
    parts = [np.sort(rng.choice(num_docs, size=n, replace=False)) for n in lens]
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    indices = np.concatenate(parts).astype(np.int32)
    level = np.repeat(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 0.0], np.float32), lens)  # rarer terms score higher
    data = (level + rng.integers(0, 3, size=indices.size).astype(np.float32) * np.float32(0.5)).astype(np.float32)
    ub = term_bounds(indptr, data)
    acc, slot, seen = np.zeros(num_docs, np.float32), np.zeros(num_docs, np.int32), np.zeros(num_docs, np.uint8)
    mask = rng.random(num_docs) < 0.3
    for terms in ([0, 1, 2, 3, 4], [4, 0], [1, 0, 5, 3], [0, 1], [2, 4, 1, 0, 3, 5]):
        t = np.array(terms, np.int64)
        for weights in (np.ones(t.size, np.float32), np.arange(1, t.size + 1, dtype=np.float32)):
            for k in (1, 3, 10, 64):
                for m in (NO_MASK, mask):
                    want = _run(K.search, (indptr, indices, data, t, weights, acc, slot, seen, m), k)
                    got = _run(K.maxscore, (indptr, indices, data, t, weights, ub, acc, slot, seen, m), k)
                    assert _same(got, want), (terms, weights.tolist(), k, m.size)
    assert not acc.any() and not seen.any()


def test_the_bounds_are_what_prunes():
    """With a wrong (too low) bound for the long list, its rows past the first window are skipped once the top 1
    is full: the kernel does prune (and only by the bounds)."""
    indptr = np.array([0, 1000, 1001], np.int64)
    indices = np.concatenate([np.arange(30_000, 31_000), [0]]).astype(np.int32)
    data = np.concatenate([np.full(1000, 2.0), [1.0]]).astype(np.float32)
    terms, weights = np.array([0, 1], np.int64), np.ones(2, np.float32)
    bufs = (np.zeros(31_000, np.float32), np.zeros(31_000, np.int32), np.zeros(31_000, np.uint8))
    want = _run(K.search, (indptr, indices, data, terms, weights, *bufs, NO_MASK), 1)
    right = _run(K.maxscore, (indptr, indices, data, terms, weights, term_bounds(indptr, data), *bufs, NO_MASK), 1)
    wrong = _run(K.maxscore, (indptr, indices, data, terms, weights, np.array([0.0, 1.0]), *bufs, NO_MASK), 1)
    assert _same(right, want) and want[0].tolist() == [30_000]
    assert wrong[0].tolist() == [0]  # the long list became non-essential after the first window


def test_the_margin_keeps_a_row_whose_float32_score_exceeds_its_real_bound():
    """Row 20000 holds two non-essential terms whose bounds (exact, real) sum BELOW the k-th score of row 0,
    but whose float32 contributions (``data * weight`` rounded up, then their sum rounded up) score ABOVE it: it
    must stay (the rounding margin); dropping it on the raw bounds would be wrong."""
    ub1, ub2, theta = np.array([1071157705, 1072927132, 1097429421], np.int32).view(np.float32)
    assert float(ub1) * 3 + float(ub2) * 5 < float(theta) < np.float32(np.float32(ub1 * 3) + np.float32(ub2 * 5))
    indptr = np.array([0, 1, 2, 3], np.int64)
    indices = np.array([20_000, 20_000, 0], np.int32)
    data = np.array([ub1, ub2, theta], np.float32)
    terms, weights = np.array([0, 1, 2], np.int64), np.array([3, 5, 1], np.float32)
    bufs = (np.zeros(20_001, np.float32), np.zeros(20_001, np.int32), np.zeros(20_001, np.uint8))
    want = _run(K.search, (indptr, indices, data, terms, weights, *bufs, NO_MASK), 1)
    got = _run(K.maxscore, (indptr, indices, data, terms, weights, term_bounds(indptr, data), *bufs, NO_MASK), 1)
    assert want[0].tolist() == [20_000] and _same(got, want)


def test_batch_kernel_equals_exhaustive_batch():
    rng = np.random.default_rng(7)
    num_docs, num_terms = 30_000, 30
    indptr, indices, data = _csc(rng, num_docs, num_terms, 5000)
    ub = term_bounds(indptr, data)
    queries = [_query(rng, num_terms, int(n)) for n in rng.choice([1, 2, 4, 25], size=40)]
    starts = np.concatenate([[0], np.cumsum([q[0].size for q in queries])]).astype(np.int64)
    terms = np.concatenate([q[0] for q in queries])
    weights = np.concatenate([q[1] for q in queries])
    n, k = len(queries), 10
    outs = []
    for kernel, extra in ((K.search_batch, ()), (K.search_pruned_batch, (ub, 0, 1024))):
        rows, scores, counts = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32), np.zeros(n, np.int64)
        bufs = (np.zeros(num_docs, np.float32), np.zeros(num_docs, np.int32), np.zeros(num_docs, np.uint8))
        kernel(indptr, indices, data, starts, terms, weights, *extra, *bufs, NO_MASK, k, 0, n, rows, scores, counts)
        outs.append([(rows[q, :c], scores[q, :c]) for q, c in enumerate(counts.tolist())])
    assert all(_same(a, b) for a, b in zip(*outs, strict=True))


def test_term_bounds():
    indptr = np.array([0, 0, 3, 3, 5, 5], np.int64)
    data = np.array([1.0, 3.0, 2.0, 0.5, 0.25], np.float32)
    assert term_bounds(indptr, data).tolist() == [0.0, 3.0, 0.0, 0.5, 0.0]
    assert term_bounds(np.zeros(3, np.int64), np.zeros(0, np.float32)).tolist() == [0.0, 0.0]
    assert term_bounds(indptr, np.array([1.0, -3.0, 2.0, 0.5, 0.25], np.float32)).size == 0  # never prune


@pytest.mark.parametrize("threads", [1, 2])
def test_scorer_top_and_top_flat_prune_with_identical_results(monkeypatch, threads):
    """``PostingScorer`` with pruning forced on equals the numpy path (``top_rows`` of the full scores)."""
    monkeypatch.setattr(bm25_query, "_PRUNE_MIN_DOCS", 0)
    monkeypatch.setattr(bm25_query, "_PRUNE_MIN_POSTINGS", 0)
    rng = np.random.default_rng(threads)
    num_docs, num_terms = 20_000, 40
    indptr, indices, data = _csc(rng, num_docs, num_terms, 3000)
    scorer = PostingScorer(indptr, indices, data, num_docs)
    queries = [_query(rng, num_terms, int(n)) for n in rng.choice([1, 2, 3, 6, 30], size=24)]
    starts = np.concatenate([[0], np.cumsum([q[0].size for q in queries])]).astype(np.int64)
    flat_terms, flat_weights = np.concatenate([q[0] for q in queries]), np.concatenate([q[1] for q in queries])
    mask = rng.random(num_docs) < 0.5
    for k in (1, 10, 64):
        for m in (None, mask):
            want = [top_rows(*scorer.score(t, w), k, m) for t, w in queries]
            assert all(_same(scorer.top(t, w, k, m), r) for (t, w), r in zip(queries, want, strict=True))
            flat = scorer.top_flat(starts, flat_terms, flat_weights, k, m, threads)
            assert all(_same(a, b) for a, b in zip(flat, want, strict=True))


def test_negative_data_or_weights_fall_back_to_exhaustive(monkeypatch):
    monkeypatch.setattr(bm25_query, "_PRUNE_MIN_DOCS", 0)
    monkeypatch.setattr(bm25_query, "_PRUNE_MIN_POSTINGS", 0)
    rng = np.random.default_rng(3)
    indptr, indices, data = _csc(rng, 5000, 10, 2000)
    data[::7] *= -1
    scorer = PostingScorer(indptr, indices, data, 5000)
    assert scorer.bounds().size == 0
    terms = np.arange(10, dtype=np.int64)
    for weights in (np.ones(10, np.float32), -np.ones(10, np.float32)):
        assert _same(scorer.top(terms, weights, 10), top_rows(*scorer.score(terms, weights), 10))
    ub = term_bounds(indptr, np.abs(data))
    assert not K._worth_pruning(indptr, terms, -np.ones(10, np.float32), ub, 10, 0, 1024)
    assert K._worth_pruning(indptr, terms, np.ones(10, np.float32), ub, 10, 0, 1024)
