"""Per-query analysis of retrieval runs: where a system wins or loses against another, and its worst queries.

Pure functions over per-query metric dicts (``per_query.json``), runs and qrels; ``evaluate_task`` writes
``worst.json`` next to each run and ``medrag eval report`` renders both as markdown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["compare", "worst_queries", "comparison_md", "worst_md"]

PerQuery = Mapping[str, Mapping[str, float]]


def compare(a: PerQuery, b: PerQuery, metric: str = "ndcg@10", eps: float = 1e-9) -> dict[str, Any]:
    """Queries where ``a`` scores higher / lower / the same as ``b`` (shared queries only), and the mean gap."""
    shared = sorted(set(a) & set(b))
    deltas = [a[q][metric] - b[q][metric] for q in shared]
    return {
        "queries": len(shared),
        "wins": sum(d > eps for d in deltas),
        "losses": sum(d < -eps for d in deltas),
        "ties": sum(abs(d) <= eps for d in deltas),
        "mean_delta": sum(deltas) / len(deltas) if deltas else 0.0,
    }


def worst_queries(per_query: PerQuery, run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                  queries: Mapping[str, str], *, n: int = 20, hits: int = 3, metric: str = "ndcg@10",
                  title: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """The ``n`` lowest-scoring queries (ties: query id), each with its text, its top ``hits`` documents (grade
    from the qrels, 0 = not judged relevant; ``title`` names them) and how many relevant documents it has."""
    order = sorted(per_query, key=lambda q: (per_query[q][metric], q))[:n]
    out = []
    for q in order:
        ranked = sorted(run.get(q, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:hits]
        judged = qrels.get(q, {})
        out.append({
            "query_id": q,
            "query": queries.get(q, ""),
            metric: per_query[q][metric],
            "relevant": sum(1 for g in judged.values() if g > 0),
            "top": [{"doc_id": d, "grade": judged.get(d, 0), "title": title(d) if title else ""} for d, _ in ranked],
        })
    return out


def comparison_md(task: str, systems: Mapping[str, PerQuery], metric: str = "ndcg@10") -> list[str]:
    """Wins/losses of every fused system (name starting with ``hybrid``) against each single leg."""
    legs = [s for s in ("bm25", "dense") if s in systems]
    fused = sorted(s for s in systems if s.startswith("hybrid"))
    if not legs or not fused:
        return []
    lines = [f"### {task}: per-query wins/losses ({metric})", "",
             "| system | vs | queries | better | worse | same | mean Δ |", "|---|---|---:|---:|---:|---:|---:|"]
    for system in fused:
        for leg in legs:
            c = compare(systems[system], systems[leg], metric)
            lines.append(f"| {system} | {leg} | {c['queries']} | {c['wins']} | {c['losses']} | {c['ties']} | "
                         f"{c['mean_delta']:+.4f} |")
    return lines + [""]


def worst_md(task: str, system: str, worst: Sequence[Mapping[str, Any]], metric: str = "ndcg@10") -> list[str]:
    """The worst queries as a table: query, score, relevant count, top hits with their grades."""
    if not worst:
        return []
    lines = [f"### {task}: the {len(worst)} worst queries of {system} ({metric})", "",
             f"| query | {metric} | relevant | top hits (grade) |", "|---|---:|---:|---|"]
    for w in worst:
        hits = "; ".join(f"{h['doc_id']} ({h['grade']}){' ' + _cell(h['title'], 60) if h.get('title') else ''}"
                         for h in w["top"])
        lines.append(f"| {w['query_id']}: {_cell(w['query'], 80)} | {w[metric]:.3f} | {w['relevant']} | {hits} |")
    return lines + [""]


def _cell(text: str, limit: int) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"
