"""medrag's own BM25 formulas equal bm25s' (the library the index format comes from), array for array."""

from __future__ import annotations

import numpy as np
import pytest

from medrag.index.bm25_formulas import METHODS, idf, term_weight

scoring = pytest.importorskip("bm25s.scoring")


@pytest.mark.parametrize("method", METHODS)
def test_idf_equals_bm25s(method):
    df = np.random.default_rng(0).integers(1, 1000, 2000)
    reference = scoring._build_idf_array({i: int(d) for i, d in enumerate(df)}, n_docs=1000,
                                         compute_idf_fn=scoring._select_idf_scorer(method))
    np.testing.assert_array_equal(idf(df, 1000, method), reference)


@pytest.mark.parametrize("method", METHODS)
def test_term_weight_equals_bm25s(method):
    rng = np.random.default_rng(1)
    tf = rng.integers(1, 30, 2000).astype(np.float32)
    doc_len = rng.integers(3, 400, 2000).astype(np.float32)
    reference = scoring._select_tfc_scorer(method)(tf_array=tf, l_d=doc_len, l_avg=71.25, k1=1.2, b=0.75, delta=0.5)
    got = term_weight(tf, doc_len, 71.25, 1.2, 0.75, method)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, reference)


def test_robertson_idf_is_floored_at_zero_and_unknown_methods_fail():
    assert idf(np.array([900]), 1000, "robertson")[0] == 0.0
    assert idf(np.array([0]), 1000, "lucene")[0] == 0.0  # a term no document holds
    with pytest.raises(ValueError, match="bm25l"):
        idf(np.array([1]), 10, "bm25l")
