"""Per-query analysis: wins/losses between systems and the worst queries with their top hits."""

from __future__ import annotations

from medrag.evaluation.per_query import compare, comparison_md, worst_md, worst_queries


def _pq(**scores: float) -> dict[str, dict[str, float]]:
    return {q: {"ndcg@10": v} for q, v in scores.items()}


def test_compare_counts_wins_losses_ties_on_shared_queries() -> None:
    hybrid = _pq(a=0.5, b=0.2, c=0.3, d=1.0)
    bm25 = _pq(a=0.4, b=0.6, c=0.3, e=0.0)
    c = compare(hybrid, bm25)
    assert (c["queries"], c["wins"], c["losses"], c["ties"]) == (3, 1, 1, 1)
    assert abs(c["mean_delta"] - (0.1 - 0.4 + 0.0) / 3) < 1e-12


def test_worst_queries_lowest_first_with_graded_top_hits() -> None:
    per_query = _pq(q1=0.9, q2=0.0, q3=0.1)
    run = {"q2": {"d1": 3.0, "d2": 5.0, "d3": 1.0, "d4": 0.5}, "q3": {"d1": 1.0}}
    qrels = {"q2": {"d3": 2, "d9": 1}, "q3": {"d1": 1}}
    worst = worst_queries(per_query, run, qrels, {"q2": "apixaban dose"}, n=2, hits=3, title=str.upper)
    assert [w["query_id"] for w in worst] == ["q2", "q3"]
    assert worst[0]["query"] == "apixaban dose" and worst[0]["relevant"] == 2
    assert [(h["doc_id"], h["grade"], h["title"]) for h in worst[0]["top"]] == [
        ("d2", 0, "D2"), ("d1", 0, "D1"), ("d3", 2, "D3")]


def test_markdown_sections() -> None:
    systems = {"hybrid": _pq(a=0.5, b=0.1), "bm25": _pq(a=0.2, b=0.3), "dense": _pq(a=0.5, b=0.0)}
    md = "\n".join(comparison_md("nfcorpus", systems))
    assert "| hybrid | bm25 | 2 | 1 | 1 | 0 |" in md and "| hybrid | dense | 2 | 1 | 0 | 1 |" in md
    assert comparison_md("t", {"bm25": _pq(a=1.0)}) == []
    worst = worst_queries(systems["hybrid"], {"b": {"x": 1.0}}, {"b": {"y": 1}}, {"b": "a | b"}, n=1)
    table = "\n".join(worst_md("nfcorpus", "hybrid", worst))
    assert "b: a / b" in table and "x (0)" in table
