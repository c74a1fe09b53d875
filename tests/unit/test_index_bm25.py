"""BM25: parity with rank-bm25 and with bm25s' own builder, streaming build, masks, top-k."""

from __future__ import annotations

import numpy as np
import pytest

from medrag.config import BM25Config
from medrag.index.bm25 import BM25Index, build_bm25, topk
from medrag.index.tokenizer import BiomedicalTokenizer

DOCS = [
    "Apixaban 5 mg twice daily reduces stroke in atrial fibrillation",
    "Warfarin with a target INR of 2.0-3.0 for mechanical heart valves",
    "Beta-blockers control the ventricular rate in atrial fibrillation",
    "Metformin is first-line therapy for type 2 diabetes",
    "SGLT2 inhibitors reduce heart failure hospitalisation in diabetes",
    "High-intensity statin therapy for LDL cholesterol of 190 mg/dL",
    "Gout flares are treated with colchicine or NSAIDs",
    "Allopurinol is the preferred urate-lowering therapy in gout",
    "CURB-65 grades community-acquired pneumonia severity",
    "Sepsis is organ dysfunction caused by infection; qSOFA screens for it",
    "Dabigatran dose reduction when creatinine clearance is low",
    "Rivaroxaban 20 mg with the evening meal for stroke prevention",
]
QUERIES = ["atrial fibrillation stroke apixaban", "gout therapy", "heart failure diabetes", "dose reduction"]


def _build(tmp_path, config, batches):
    build_bm25(batches, tmp_path / "bm25", config)
    return BM25Index.load(tmp_path / "bm25", config)


def test_parity_with_rank_bm25_okapi(tmp_path):
    rank_bm25 = pytest.importorskip("rank_bm25")
    config = BM25Config(method="atire", idf_method="robertson")  # rank-bm25's BM25Okapi variant
    index = _build(tmp_path, config, [DOCS])
    tok = BiomedicalTokenizer(config)
    reference = rank_bm25.BM25Okapi([tok.analyze(d) for d in DOCS], k1=config.k1, b=config.b)
    for query in QUERIES:
        ref = reference.get_scores(tok.analyze(query))
        assert ref.min() >= 0  # no negative idf in this corpus, so the variants coincide exactly
        ours = index.scores(query)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
        rows, scores = index.search(query, 5)
        expected = sorted(np.flatnonzero(ref > 0), key=lambda i: (-ref[i], i))[:5]
        assert rows.tolist() == expected
        np.testing.assert_allclose(scores, ref[rows], rtol=1e-5)


def test_parity_with_bm25s_builder(tmp_path):
    import bm25s

    config = BM25Config()
    index = _build(tmp_path, config, [DOCS])
    tok = BiomedicalTokenizer(config)
    reference = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
    reference.index([tok.analyze(d) for d in DOCS], show_progress=False)
    for query in QUERIES:
        np.testing.assert_allclose(index.scores(query), reference.get_scores(tok.analyze(query)), rtol=1e-6)


def test_streaming_batches_build_the_same_index(tmp_path):
    config = BM25Config()
    one = _build(tmp_path / "a", config, [DOCS])
    many = _build(tmp_path / "b", config, [DOCS[:5], DOCS[5:6], DOCS[6:]])
    for query in QUERIES:
        np.testing.assert_array_equal(one.scores(query), many.scores(query))


def test_saved_in_bm25s_format_and_loaded_memory_mapped(tmp_path):
    index = _build(tmp_path, BM25Config(), [DOCS])
    assert isinstance(index.model.scores["data"], np.memmap)
    stats = build_bm25([DOCS], tmp_path / "again", BM25Config())
    assert stats["documents"] == len(DOCS) and stats["vocabulary"] == len(index.vocab)


def test_mask_is_applied_before_the_cut(tmp_path):
    index = _build(tmp_path, BM25Config(), [DOCS])
    mask = np.zeros(len(DOCS), dtype=bool)
    mask[[1, 10, 11]] = True  # rows that are not the best matches
    rows, _ = index.search("stroke prevention dose", 2, mask)
    assert set(rows.tolist()) <= {1, 10, 11} and len(rows) == 2


def test_unknown_terms_and_empty_matches(tmp_path):
    index = _build(tmp_path, BM25Config(), [DOCS])
    rows, scores = index.search("zzzz qqqq", 5)
    assert rows.size == 0 and scores.size == 0
    assert not index.scores("zzzz").any()


def test_topk_breaks_ties_by_row_and_keeps_ties_at_the_cut():
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 0.0], dtype=np.float32)
    rows, vals = topk(scores, 2)
    assert rows.tolist() == [1, 2] and vals.tolist() == [3.0, 3.0]
    rows, _ = topk(scores, 10, positive_only=True)
    assert rows.tolist() == [1, 2, 4, 3, 0]


def test_sparse_scores_and_lookup_agree_with_the_dense_vector(tmp_path):
    from medrag.index.bm25 import lookup

    index = _build(tmp_path, BM25Config(), [DOCS])
    for query in QUERIES:
        full = index.scores(query)
        rows, vals = index.sparse_scores(query)
        assert rows.tolist() == np.flatnonzero(full).tolist()
        np.testing.assert_array_equal(vals, full[rows])
        probe = np.arange(len(DOCS))
        np.testing.assert_array_equal(lookup((rows, vals), probe), full)
