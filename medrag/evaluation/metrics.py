"""Retrieval metrics computed as the field computes them: trec_eval's code through pytrec-eval-terrier.

R2MED and BEIR both hand ``{qid: {docid: score}}`` runs and graded ``{qid: {docid: grade}}`` qrels to
pytrec_eval and average the per-query values over the queries it returns. We do the same, so nDCG@10 here
equals trec_eval's ``ndcg_cut.10`` (gain = grade, log2 discount, ties in score broken by docid descending).

``reference_ndcg`` is a small pure-python nDCG@k written from trec_eval's definition; the parity test checks
the two agree, on hand-built graded cases and on real runs.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._optional import require
from ..errors import EvaluationError

__all__ = [
    "MEASURES",
    "RetrievalScores",
    "evaluate_run",
    "reference_ndcg",
    "trec_order",
    "mean",
]

#: our metric name -> pytrec_eval measure key (the per-query dict key pytrec_eval returns)
MEASURES: dict[str, str] = {
    "ndcg@10": "ndcg_cut_10",
    "ndcg@100": "ndcg_cut_100",
    "recall@10": "recall_10",
    "recall@100": "recall_100",
    "map": "map",
    "mrr": "recip_rank",
}
_REQUEST = {"ndcg_cut.10,100", "recall.10,100", "map", "recip_rank"}

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class RetrievalScores:
    """Mean metrics over the evaluated queries and the per-query values they average."""

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]

    @property
    def num_queries(self) -> int:
        return len(self.per_query)

    def to_dict(self) -> dict[str, Any]:
        return {"aggregate": self.aggregate, "per_query": self.per_query, "num_queries": self.num_queries}


def mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def evaluate_run(qrels: Qrels, run: Run, *, ignore_identical_ids: bool = False) -> RetrievalScores:
    """nDCG@10/@100, Recall@10/@100, MAP and MRR of ``run`` against graded ``qrels`` (pytrec_eval).

    Queries of ``qrels`` missing from ``run`` get 0 for every measure (a system that returns nothing for a
    query scores nothing for it); queries of ``run`` without judgements are ignored, as trec_eval does.
    ``ignore_identical_ids`` drops hits whose doc id equals the query id (BEIR's convention).
    """
    pytrec_eval = require("pytrec_eval", "pytrec-eval-terrier", "eval", "retrieval metrics")
    if not qrels:
        raise EvaluationError("no relevance judgements to evaluate against")
    clean_qrels = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    clean_run: dict[str, dict[str, float]] = {}
    for qid, docs in run.items():
        hits = {str(d): float(s) for d, s in docs.items() if not (ignore_identical_ids and str(d) == str(qid))}
        if hits:
            clean_run[str(qid)] = hits
    evaluator = pytrec_eval.RelevanceEvaluator(clean_qrels, _REQUEST)
    raw = evaluator.evaluate(clean_run) if clean_run else {}
    per_query: dict[str, dict[str, float]] = {}
    for qid in sorted(clean_qrels):
        values = raw.get(qid)
        per_query[qid] = {name: float(values[key]) if values else 0.0 for name, key in MEASURES.items()}
    aggregate = {name: mean([pq[name] for pq in per_query.values()]) for name in MEASURES}
    return RetrievalScores(aggregate=aggregate, per_query=per_query)


def _single(value: float) -> float:
    """``value`` rounded to single precision, as pytrec_eval holds run scores."""
    return struct.unpack("f", struct.pack("f", value))[0]


def trec_order(run_q: Mapping[str, float]) -> list[str]:
    """Doc ids in the order trec_eval ranks them: score descending, ties by doc id descending (strcmp).

    Scores are compared in single precision, as pytrec_eval stores them: two scores closer than float32
    resolution tie (checked against pytrec_eval in the parity test).
    """
    by_id = sorted(run_q, key=lambda d: d.encode("utf-8"), reverse=True)
    return sorted(by_id, key=lambda d: -_single(run_q[d]))  # stable: ties keep the doc-id-descending order


def reference_ndcg(qrels_q: Mapping[str, int], run_q: Mapping[str, float], k: int = 10) -> float:
    """trec_eval's ``ndcg_cut.k`` for one query, in plain python.

    DCG@k = sum over the first k ranked docs of grade / log2(rank + 1) (grade <= 0 counts 0); the ideal DCG
    ranks the judged grades descending, cut at k. nDCG = DCG / ideal DCG, 0 when the ideal is 0.
    """
    ranked = trec_order(run_q)[:k]
    dcg = math.fsum(max(qrels_q.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranked))
    ideal_grades = sorted((g for g in qrels_q.values() if g > 0), reverse=True)[:k]
    idcg = math.fsum(g / math.log2(i + 2) for i, g in enumerate(ideal_grades))
    return dcg / idcg if idcg > 0 else 0.0
