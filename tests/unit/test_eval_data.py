"""Benchmark loaders, hub snapshot normalisation, expansion composition, published table and report."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medrag.config import RetrievalEvalConfig
from medrag.errors import DataNotFoundError, InputError
from medrag.evaluation.data import find_r2med_tasks, load_r2med_task, load_tasks, read_qrels_file
from medrag.evaluation.expansion import compose_query, load_expansions, passage_prompt
from medrag.evaluation.hub import normalise_r2med_snapshot
from medrag.evaluation.records import ItemCache
from medrag.evaluation.report import collect, load_published, write_report
from medrag.evaluation.retrieval import aggregate_hits, system_name
from medrag.types import Hit


def test_r2med_task_loads_and_drops_unjudged_queries(fixtures_dir, tmp_path):
    task = load_r2med_task(fixtures_dir / "eval" / "r2med" / "Cardio-Mini")
    assert task.num_queries == 6 and task.qrels["q1"]["af/doac_vs_warfarin_0.txt"] == 2
    assert len(task.corpus_sha256) == 64
    folder = tmp_path / "T"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"id": "d1", "text": "x"}\n')
    (folder / "query.jsonl").write_text('{"id": "1", "text": "a"}\n{"id": "2", "text": "b"}\n')
    (folder / "qrels.txt").write_text("q_id p_id score\n1 d1 2\n")
    task = load_r2med_task(folder)
    assert task.queries == {"1": "a"} and task.qrels == {"1": {"d1": 2}}
    assert find_r2med_tasks(tmp_path) == {"T": folder}


def test_qrels_formats(tmp_path):
    (tmp_path / "a.tsv").write_text("query-id\tcorpus-id\tscore\nq\td\t1\n")
    (tmp_path / "b.txt").write_text("q 0 d 2\n")
    (tmp_path / "c.jsonl").write_text('{"query-id": "q", "corpus-id": "d", "score": "3"}\n')
    assert [read_qrels_file(tmp_path / n) for n in ("a.tsv", "b.txt", "c.jsonl")] == [
        {"q": {"d": 1}}, {"q": {"d": 2}}, {"q": {"d": 3}}]
    (tmp_path / "bad.txt").write_text("q d\n")
    with pytest.raises(InputError, match="bad.txt:1"):
        read_qrels_file(tmp_path / "bad.txt")


def test_task_selection_errors(fixtures_dir, tmp_path):
    root = fixtures_dir / "eval" / "r2med"
    assert [t.name for t in load_tasks("r2med", root, ("cardio-mini",))] == ["Cardio-Mini"]
    with pytest.raises(DataNotFoundError, match="R2MED/Biology"):
        load_tasks("r2med", root, ("Biology",))
    with pytest.raises(DataNotFoundError, match="BEIR"):
        load_tasks("beir", tmp_path / "missing")


def test_hub_snapshot_normalisation(tmp_path):
    snap = tmp_path / "snap"
    (snap / "data").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["d1", "d2"], "text": ["alpha", "beta"]}), snap / "data" / "corpus-00000.parquet")
    (snap / "data" / "query.jsonl").write_text('{"id": "1", "text": "alpha?"}\n')
    (snap / "qrels.txt").write_text("1 d1 1\n")
    task = load_r2med_task(normalise_r2med_snapshot(snap, tmp_path / "Biology"))
    assert task.name == "Biology" and task.qrels == {"1": {"d1": 1}}
    assert (tmp_path / "Biology" / "corpus.jsonl").read_text().count("\n") == 2


def test_expansion_composition(fixtures_dir):
    assert compose_query("hyde", "q?", " a  passage ") == "a passage"
    assert compose_query("query2doc", "q?", "p", repeat=2) == "q? q? p"
    assert compose_query("reason", "q?", "sub 1") == "q?\nsub 1"
    assert compose_query("hyde", "q?", "") == "q?"
    assert passage_prompt("x?", chat=False).endswith("Question: x?\nPassage:")
    assert passage_prompt("x?", chat=True)[0]["role"] == "user"
    hyd = load_expansions(fixtures_dir / "eval" / "r2med" / "Cardio-Mini" / "hyde" / "handwritten" / "query_with_hydoc.jsonl")
    assert set(hyd) == {f"q{i}" for i in range(1, 7)}


def test_hits_aggregate_to_documents_by_best_chunk():
    def hit(doc, n, score, rank):
        return Hit(f"{doc}#{n}", doc, score, rank, "", "", "", "jsonl")

    hits = [hit("a", 1, 0.9, 1), hit("b", 0, 0.8, 2), hit("a", 0, 0.5, 3), hit("c", 0, 0.4, 4)]
    assert aggregate_hits(hits, 2) == {"a": 0.9, "b": 0.8}
    assert system_name(RetrievalEvalConfig(mode="bm25", expand="hyde", llm="openai:http://h:1/v1#qwen-7b")) == "bm25+hyde@qwen-7b"
    assert system_name(RetrievalEvalConfig(mode="dense")) == "dense"


def test_item_cache_survives_a_torn_line(tmp_path):
    cache = ItemCache(tmp_path / "c.jsonl")
    cache.put("a", {"x": 1})
    with open(tmp_path / "c.jsonl", "a") as fh:
        fh.write('{"key": "b", "val')  # killed mid-write
    again = ItemCache(tmp_path / "c.jsonl")
    assert "a" in again and "b" not in again and again.get("a") == {"x": 1}


def test_published_table_matches_quoted_averages():
    pub = load_published()
    by_id = {s["id"]: s for s in pub["systems"]}
    assert len(pub["tasks"]) == 8
    assert by_id["bm25"]["average"] == 15.13 and by_id["nv"]["average"] == 31.43
    assert by_id["query2doc/gpt4/nv"]["average"] == 41.65
    for s in pub["systems"]:
        assert s["average"] == pytest.approx(sum(s["ndcg@10"].values()) / 8, abs=0.006)


def _fake_results(root, system, task, ndcg):
    d = root / system / task
    d.mkdir(parents=True)
    metrics = dict.fromkeys(("ndcg@10", "ndcg@100", "recall@10", "recall@100", "map", "mrr"), ndcg)
    (d / "results.json").write_text(json.dumps({"kind": "retrieval", "system": system, "task": {"name": task},
                                                "metrics": metrics, "num_queries": 5}))


def test_report_compares_only_same_tasks(tmp_path):
    pub = load_published()
    for t in pub["tasks"]:
        _fake_results(tmp_path, "hybrid", t, 0.25)
    _fake_results(tmp_path, "bm25", "Biology", 0.2)
    _fake_results(tmp_path, "bm25", "My-Task", 0.9)
    data = collect(tmp_path)
    assert set(data.retrieval) == {"hybrid", "bm25"}
    written = write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| **medrag hybrid** |" in md and "**25.00**" in md  # full coverage: average shown
    assert "**medrag bm25**" not in md  # partial coverage: no average against the published ones
    assert written["images"] and (tmp_path / "retrieval.png").stat().st_size > 10_000
