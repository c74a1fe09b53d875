"""Fusion functions: normalisation, weighted fusion, RRF, tie-breaks, document aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from medrag.retrieve.fusion import best_per_document, normalize, rank, rrf_fusion, union_rows, weighted_fusion


def test_normalize():
    s = np.array([1.0, 3.0, 5.0])
    np.testing.assert_allclose(normalize(s, "minmax"), [0.0, 0.5, 1.0])
    z = normalize(s, "zscore")
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    np.testing.assert_allclose(normalize(s, "none"), s)
    assert not normalize(np.array([2.0, 2.0]), "minmax").any()
    assert not normalize(np.array([2.0, 2.0]), "zscore").any()
    with pytest.raises(ValueError):
        normalize(s, "softmax")


def test_weighted_fusion_uses_weights_on_normalised_scores():
    bm25 = np.array([10.0, 0.0, 5.0])
    dense = np.array([0.1, 0.9, 0.5])
    fused = weighted_fusion([bm25, dense], [0.7, 0.3], "minmax")
    np.testing.assert_allclose(fused, [0.7 * 1 + 0.3 * 0, 0.7 * 0 + 0.3 * 1, 0.7 * 0.5 + 0.3 * 0.5])
    only_bm25 = weighted_fusion([bm25, dense], [1.0, 0.0], "minmax")
    assert np.argsort(-only_bm25).tolist() == np.argsort(-bm25).tolist()


def test_rrf_matches_the_formula():
    rows, scores = rrf_fusion([np.array([5, 7, 9]), np.array([7, 5])], k=60)
    expected = {5: 1 / 61 + 1 / 62, 7: 1 / 62 + 1 / 61, 9: 1 / 63}
    assert rows.tolist() == [5, 7, 9]  # 5 and 7 tie: lower row first
    np.testing.assert_allclose(scores, [expected[r] for r in rows.tolist()], rtol=1e-6)
    rows_w, _ = rrf_fusion([np.array([5, 7]), np.array([7, 5])], k=60, weights=[2.0, 1.0])
    assert rows_w.tolist() == [5, 7]


def test_rank_is_deterministic_under_ties():
    rows = np.array([9, 3, 7, 1])
    scores = np.array([0.5, 0.5, 0.9, 0.5])
    r, s = rank(rows, scores)
    assert r.tolist() == [7, 1, 3, 9] and s.tolist() == pytest.approx([0.9, 0.5, 0.5, 0.5])
    assert rank(rows, scores, k=2)[0].tolist() == [7, 1]


def test_union_and_document_aggregation():
    assert union_rows(np.array([3, 1]), np.array([2, 3])).tolist() == [1, 2, 3]
    docs = ["a", "b", "a", "c", "b", "d"]
    assert best_per_document(docs) == [0, 1, 3, 5]
    assert best_per_document(docs, k=2) == [0, 1]


def test_rare_term_missing_weights_rare_terms_by_idf():
    from medrag.retrieve.fusion import rare_term_missing

    # 100 rows; term 0 is rare (rows 1, 2), term 1 rare (row 2), term 2 common (50 rows: ignored)
    term_rows = [np.array([1, 2]), np.array([2]), np.arange(50)]
    df = np.array([2, 1, 50])
    pool = np.array([0, 1, 2, 3])
    missing = rare_term_missing(term_rows, df, 100, 0.05, pool)
    idf = np.log1p((100 - np.array([2, 1]) + 0.5) / (np.array([2, 1]) + 0.5))
    assert missing[0] == pytest.approx(1.0) and missing[2] == pytest.approx(0.0)
    assert missing[1] == pytest.approx(idf[1] / idf.sum()) and missing[3] == pytest.approx(1.0)
    # a query without rare terms penalises nothing
    assert not rare_term_missing([np.arange(50)], np.array([50]), 100, 0.05, pool).any()


def test_fusion_rare_term_penalty_lifts_the_row_with_the_rare_term():
    from medrag.config import FusionConfig
    from medrag.retrieve.stages import Candidates, Fusion

    pool = np.array([0, 1, 2])
    bm25_scores = {0: 1.0, 1: 0.9, 2: 0.0}
    dense_scores = {0: 0.50, 1: 0.95, 2: 0.90}

    def leg(scores, rare=None):
        return Candidates(pool, np.array([scores[r] for r in pool.tolist()], dtype=np.float32),
                          lambda rows: np.array([scores[r] for r in rows.tolist()], dtype=np.float32), rare)

    # row 0 holds the rare query term, rows 1-2 do not
    rare = lambda rows, share: np.array([0.0 if r == 0 else 1.0 for r in rows.tolist()])  # noqa: E731
    plain = Fusion(FusionConfig(), (0.4, 0.6)).fuse([leg(bm25_scores, rare), leg(dense_scores)], 3)
    assert plain[0][0] == 1
    protected = Fusion(FusionConfig(rare_term_penalty=1.5), (0.4, 0.6)).fuse(
        [leg(bm25_scores, rare), leg(dense_scores)], 3)
    assert protected[0][0] == 0
