"""Metric parity: our nDCG@10 (pytrec_eval) equals a pure-python trec_eval nDCG on graded qrels."""

from __future__ import annotations

import json
import math
import random

import pytest

from medrag.evaluation.metrics import evaluate_run, reference_ndcg, trec_order
from medrag.evaluation.trec import read_run, write_qrels, write_run

QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 0, "d9": 1},
    "q2": {"d5": 1},
    "q3": {"d1": 3, "d4": 2, "d6": 1},
}
RUN = {
    "q1": {"d1": 0.9, "d3": 0.8, "d2": 0.5, "d7": 0.4},
    "q2": {"d6": 1.0, "d5": 0.2},
    "q3": {"d6": 2.0, "d4": 2.0, "d1": 1.0, "d8": 0.5},  # tie between d6 and d4
}


def test_hand_computed_graded_ndcg():
    # q1: ranking d1(2) d3(0) d2(1) d7(-): DCG = 2/log2(2) + 0 + 1/log2(4) = 2.5
    # ideal: 2, 1, 1 -> 2 + 1/log2(3) + 1/log2(4)
    expected = 2.5 / (2 + 1 / math.log2(3) + 0.5)
    assert reference_ndcg(QRELS["q1"], RUN["q1"], 10) == pytest.approx(expected, abs=1e-12)
    scores = evaluate_run(QRELS, RUN)
    assert scores.per_query["q1"]["ndcg@10"] == pytest.approx(expected, abs=1e-6)


def test_ties_are_broken_by_docid_descending_like_trec_eval():
    assert trec_order(RUN["q3"]) == ["d6", "d4", "d1", "d8"]
    # d6 (grade 1) ranks before d4 (grade 2) only because of the tie rule; pytrec_eval agrees
    scores = evaluate_run(QRELS, RUN)
    assert scores.per_query["q3"]["ndcg@10"] == pytest.approx(reference_ndcg(QRELS["q3"], RUN["q3"]), abs=1e-6)
    swapped = {**RUN, "q3": {**RUN["q3"], "d4": 2.001}}
    assert evaluate_run(QRELS, swapped).per_query["q3"]["ndcg@10"] > scores.per_query["q3"]["ndcg@10"]


def test_scores_tie_at_single_precision_as_in_pytrec_eval():
    near = {"q3": {"d6": 2.0, "d4": 2.0000001, "d1": 1.0}}  # equal as float32
    assert trec_order(near["q3"])[:2] == ["d6", "d4"]
    got = evaluate_run({"q3": QRELS["q3"]}, near).per_query["q3"]["ndcg@10"]
    assert got == pytest.approx(reference_ndcg(QRELS["q3"], near["q3"]), abs=1e-9)


def test_random_graded_runs_match_pytrec_eval():
    rng = random.Random(7)
    docs = [f"doc{i:03d}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(40):
        qid = f"q{q}"
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 12))}
        # coarse scores make ties frequent
        run[qid] = {d: float(rng.randint(0, 8)) for d in rng.sample(docs, rng.randint(5, 40))}
    scores = evaluate_run(qrels, run)
    for k, name in ((10, "ndcg@10"), (100, "ndcg@100")):
        for qid in qrels:
            assert scores.per_query[qid][name] == pytest.approx(reference_ndcg(qrels[qid], run[qid], k), abs=1e-6)
    mean = sum(reference_ndcg(qrels[q], run[q]) for q in qrels) / len(qrels)
    assert scores.aggregate["ndcg@10"] == pytest.approx(mean, abs=1e-6)


def test_other_measures_and_missing_queries():
    scores = evaluate_run(QRELS, {"q1": RUN["q1"]})
    q1 = scores.per_query["q1"]
    assert q1["mrr"] == 1.0
    assert q1["recall@10"] == pytest.approx(2 / 3)  # d1, d2 of the three relevant d1, d2, d9
    assert q1["map"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert scores.per_query["q2"] == dict.fromkeys(q1, 0.0)  # no hits: zero, still averaged
    assert scores.aggregate["mrr"] == pytest.approx(1 / 3)


def test_ignore_identical_ids():
    qrels = {"a": {"a": 1, "b": 1}}
    run = {"a": {"a": 2.0, "b": 1.0}}
    assert evaluate_run(qrels, run).per_query["a"]["mrr"] == 1.0
    assert evaluate_run(qrels, run, ignore_identical_ids=True).per_query["a"]["recall@10"] == 0.5


def test_trec_files_round_trip(tmp_path):
    path = write_run(tmp_path / "run.trec", RUN, "medrag-test")
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["q1", "Q0", "d1", "1", "0.9", "medrag-test"]
    assert read_run(path) == RUN
    assert evaluate_run(QRELS, read_run(path)).aggregate == evaluate_run(QRELS, RUN).aggregate
    write_qrels(tmp_path / "qrels.txt", QRELS)
    assert (tmp_path / "qrels.txt").read_text().splitlines()[0] == "q1 0 d1 2"


def test_real_pubmedqa_run_parity(shared_data):
    """A real BM25 run (rank-bm25) over the real PubMedQA-L abstracts: pytrec_eval == pure python."""
    rank_bm25 = pytest.importorskip("rank_bm25")
    path = shared_data / "pubmedqa" / "pqal_dev.json"
    if not path.is_file():
        pytest.skip("pubmedqa data absent")
    items = list(json.loads(path.read_text()).items())[:150]
    doc_ids = [f"pmid{pmid}" for pmid, _ in items]
    tokenized = [" ".join(v["CONTEXTS"]).lower().split() for _, v in items]
    bm25 = rank_bm25.BM25Okapi(tokenized)
    run, qrels = {}, {}
    for pmid, v in items[:60]:
        scores = bm25.get_scores(v["QUESTION"].lower().split())
        top = sorted(range(len(doc_ids)), key=lambda i: -scores[i])[:100]
        run[pmid] = {doc_ids[i]: float(scores[i]) for i in top}
        qrels[pmid] = {f"pmid{pmid}": 1}
    result = evaluate_run(qrels, run)
    for qid in qrels:
        assert result.per_query[qid]["ndcg@10"] == pytest.approx(reference_ndcg(qrels[qid], run[qid]), abs=1e-6)
    assert 0.3 < result.aggregate["ndcg@10"] <= 1.0
