"""Pseudo-relevance feedback (retrieve/prf.py): the pure functions and the leg over a toy BM25 index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medrag.config import FusionConfig, IndexConfig
from medrag.errors import ConfigError
from medrag.index import build_index
from medrag.index.bm25 import BM25Index
from medrag.ingest.store import write_corpus
from medrag.retrieve.legs import BM25Leg
from medrag.retrieve.prf import FeedbackBM25Leg, feedback_query, mix_sparse, rocchio, row_term_weights
from medrag.types import Chunk


def test_row_term_weights_reads_csc_postings():
    # 3 rows x 2 terms: term 0 in rows 0, 2; term 1 in row 1
    indptr, indices, data = np.array([0, 2, 3]), np.array([0, 2, 1]), np.array([1.5, 0.5, 2.0], np.float32)
    assert row_term_weights(indptr, indices, data, 2, np.array([0, 1])).tolist() == [0.5, 0.0]
    assert row_term_weights(indptr, indices, data, 1, np.array([1, 0])).tolist() == [2.0, 0.0]


def test_feedback_query_normalises_rows_drops_query_terms_and_keeps_the_heaviest():
    rows = [(np.array([0, 1, 2]), np.array([2.0, 1.0, 1.0])),   # shares .5 .25 .25
            (np.array([1, 3]), np.array([3.0, 1.0]))]            # shares .75 .25
    terms, weights = feedback_query(rows, exclude=np.array([0]), n_terms=2)
    assert terms.tolist() == [1, 2] and weights == pytest.approx([1.0 / 1.25, 0.25 / 1.25])
    assert feedback_query([(np.array([0]), np.array([1.0]))], np.array([0]), 5)[0].size == 0


def test_mix_sparse_rescales_the_expansion_to_the_original():
    original = (np.array([0, 2]), np.array([4.0, 2.0], np.float32))
    expansion = (np.array([1, 2]), np.array([1.0, 0.5], np.float32))
    rows, scores = mix_sparse(original, expansion, 0.25)
    # scale = 4 / 1; row 1 = .25 * 4 * 1, row 2 = .75 * 2 + .25 * 4 * .5
    assert rows.tolist() == [0, 1, 2] and scores.tolist() == pytest.approx([3.0, 1.0, 2.0])
    assert mix_sparse(original, (np.zeros(0, np.int64), np.zeros(0, np.float32)), 0.5) is original


def test_rocchio_adds_the_mean_feedback_vector():
    q = np.array([1.0, 0.0], np.float32)
    fb = np.array([[0.0, 1.0], [0.0, 3.0]], np.float32)
    assert rocchio(q, fb, 0.5).tolist() == [1.0, 1.0]
    assert rocchio(q, np.zeros((0, 2), np.float32), 0.5).tolist() == [1.0, 0.0]


def test_feedback_config_is_checked():
    with pytest.raises(ConfigError, match="bm25_feedback_weight"):
        FusionConfig(bm25_feedback_weight=1.0)
    with pytest.raises(ConfigError, match="bm25_feedback_docs"):
        FusionConfig(bm25_feedback_docs=0)
    with pytest.raises(ConfigError, match="dense_feedback_weight"):
        FusionConfig(dense_feedback_weight=-0.1)


TEXTS = [
    "apixaban dose reduction creatinine clearance",
    "creatinine clearance below thirty in renal impairment",
    "renal impairment and creatinine clearance",
    "warfarin target inr",
]


@pytest.fixture
def toy(tmp_path: Path) -> tuple[BM25Index, list[str]]:
    chunks = [Chunk(f"t:{i}#0", f"t:{i}", "toy", "", "", text, 0) for i, text in enumerate(TEXTS)]
    write_corpus(tmp_path / "corpus", chunks, source="toy")
    build_index([tmp_path / "corpus"], tmp_path / "index", IndexConfig(dense=False), progress=False)
    return BM25Index.load(tmp_path / "index" / "bm25", IndexConfig().bm25), TEXTS


def test_feedback_leg_expands_with_terms_of_the_top_rows(toy):
    index, texts = toy
    leg = FeedbackBM25Leg(BM25Leg(index), lambda rows: [texts[r] for r in rows.tolist()],
                          FusionConfig(bm25_feedback_weight=0.5, bm25_feedback_docs=2, bm25_feedback_terms=3))
    plain = index.sparse_scores("renal impairment")
    assert 0 not in plain[0].tolist()  # row 0 shares no query term
    rows, scores = leg.expanded("renal impairment", None)
    # the feedback rows (1, 2) bring in "creatinine clearance", which row 0 holds
    assert 0 in rows.tolist() and scores[rows.tolist().index(0)] > 0
    assert 3 not in rows.tolist()
    (cands,) = leg.candidates(["renal impairment"], 3, None)
    assert cands.rows.size == 3 and cands.rescore(np.array([3])).tolist() == [0.0]
    # searched alone, the leg is the plain BM25 query
    assert leg.top(["renal impairment"], 5, None)[0][0].tolist() == BM25Leg(index).top(["renal impairment"], 5, None)[0][0].tolist()
