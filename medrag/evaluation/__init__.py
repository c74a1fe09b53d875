"""Evaluation: R2MED/BEIR retrieval (trec_eval metrics), MedRGB scenarios, MIRAGE/PubMedQA accuracy, reports.

Public API (imported lazily)::

    from medrag.evaluation import load_tasks, evaluate_task, evaluate_run, run_qa, run_medrgb, write_report
    tasks = load_tasks("r2med", "R2MED/", ("Biology",))
    outcome = evaluate_task(tasks[0], RetrievalEvalConfig(mode="hybrid"), Path("results/r2med"))
    scores = evaluate_run(qrels, run)            # pytrec_eval: nDCG@10/@100, Recall@10/@100, MAP, MRR

The command line is ``medrag eval retrieval|rag|report`` (``medrag.evaluation.cli``).
"""

from __future__ import annotations

from .._lazy import lazy_getattr

__all__ = [
    "load_tasks",
    "load_r2med_task",
    "load_beir_task",
    "evaluate_run",
    "reference_ndcg",
    "evaluate_task",
    "write_summary",
    "load_medrgb",
    "build_instances",
    "load_qa",
    "run_qa",
    "run_medrgb",
    "write_report",
    "load_published",
]

_LAZY = {
    "load_tasks": "medrag.evaluation.data",
    "load_r2med_task": "medrag.evaluation.data",
    "load_beir_task": "medrag.evaluation.data",
    "evaluate_run": "medrag.evaluation.metrics",
    "reference_ndcg": "medrag.evaluation.metrics",
    "evaluate_task": "medrag.evaluation.retrieval",
    "write_summary": "medrag.evaluation.retrieval",
    "load_medrgb": "medrag.evaluation.medrgb",
    "build_instances": "medrag.evaluation.medrgb",
    "load_qa": "medrag.evaluation.qa",
    "run_qa": "medrag.evaluation.rag",
    "run_medrgb": "medrag.evaluation.rag",
    "write_report": "medrag.evaluation.report",
    "load_published": "medrag.evaluation.report",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
