"""`medrag eval retrieval` end to end: real ingest + index + search on R2MED-layout and BEIR folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from medrag.cli import cli
from medrag.config import RetrievalEvalConfig
from medrag.evaluation.data import load_beir_task, load_r2med_task
from medrag.evaluation.metrics import reference_ndcg
from medrag.evaluation.retrieval import evaluate_task
from medrag.evaluation.trec import read_run


def _run(args):
    result = CliRunner().invoke(cli, ["eval", "retrieval", *args, "--json", "-q"], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def r2med_dir(fixtures_dir):
    return fixtures_dir / "eval" / "r2med"


@pytest.fixture(scope="module")
def bm25_out(tmp_path_factory, r2med_dir):
    out = tmp_path_factory.mktemp("bm25")
    result = _run(["--benchmark", "r2med", "--data", str(r2med_dir), "--mode", "bm25", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_r2med_fixture_end_to_end(bm25_out):
    out, payload = bm25_out
    (run,) = payload["runs"]
    assert run["task"] == "Cardio-Mini" and run["num_queries"] == 6
    assert 0.5 < run["metrics"]["ndcg@10"] <= 1.0
    task_dir = out / "bm25" / "Cardio-Mini"
    results = json.loads((task_dir / "results.json").read_text())
    assert results["config"]["mode"] == "bm25" and results["index_config"]["dense"] is False
    assert results["versions"]["pytrec-eval-terrier"] and results["index"]["fingerprint"]
    assert payload["summary"]["systems"]["bm25"]["Cardio-Mini"]["metrics"] == run["metrics"]
    lines = (task_dir / "run.trec").read_text().splitlines()
    assert lines[0].split()[1] == "Q0" and lines[0].split()[3] == "1"


def test_metric_parity_on_our_run(bm25_out, r2med_dir):
    """nDCG@10 of the saved run: pytrec_eval (per_query.json) == pure-python trec_eval definition."""
    out, _ = bm25_out
    task = load_r2med_task(r2med_dir / "Cardio-Mini")
    run = read_run(out / "bm25" / "Cardio-Mini" / "run.trec")
    per_query = json.loads((out / "bm25" / "Cardio-Mini" / "per_query.json").read_text())
    for qid, qrels in task.qrels.items():
        assert per_query[qid]["ndcg@10"] == pytest.approx(reference_ndcg(qrels, run[qid]), abs=1e-6)


def test_rerun_reuses_index_and_hits(bm25_out, r2med_dir):
    out, payload = bm25_out
    (index_dir,) = (out / ".cache" / "indexes").iterdir()
    stamp = os.stat(index_dir / "manifest.json").st_mtime_ns
    again = _run(["--benchmark", "r2med", "--data", str(r2med_dir), "--mode", "bm25", "--out", str(out)])
    assert again.exit_code == 0
    assert json.loads(again.output)["runs"][0]["metrics"] == payload["runs"][0]["metrics"]  # deterministic
    assert os.stat(index_dir / "manifest.json").st_mtime_ns == stamp  # not rebuilt


def test_precomputed_hyde_expansions(tmp_path, r2med_dir, bm25_out):
    hyde = r2med_dir / "Cardio-Mini" / "hyde" / "handwritten" / "query_with_hydoc.jsonl"
    result = _run(["--data", str(r2med_dir), "--mode", "bm25", "--expand", "hyde", "--expansions", str(hyde),
                   "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)["runs"]
    assert run["system"] == "bm25+hyde@precomputed"
    assert run["metrics"]["ndcg@10"] > bm25_out[1]["runs"][0]["metrics"]["ndcg@10"]
    expansions = json.loads((tmp_path / run["system"] / "Cardio-Mini" / "expansions.json").read_text())
    assert expansions["q4"].startswith("Inhaled corticosteroids")


def test_hybrid_and_dense_share_one_index(tmp_path, r2med_dir):
    task = load_r2med_task(r2med_dir / "Cardio-Mini")
    hybrid = evaluate_task(task, RetrievalEvalConfig(mode="hybrid"), tmp_path, progress=False)
    dense = evaluate_task(task, RetrievalEvalConfig(mode="dense"), tmp_path, progress=False)
    assert len(list((tmp_path / ".cache" / "indexes").iterdir())) == 1
    assert hybrid.aggregate["ndcg@10"] > 0.5 and dense.aggregate["ndcg@10"] > 0.5
    assert hybrid.aggregate != dense.aggregate
    # per-query analysis: worst queries with their top hits, and hybrid vs each leg in the report
    worst = json.loads((hybrid.out_dir / "worst.json").read_text())
    assert len(worst) == 6 and worst[0]["ndcg@10"] <= worst[-1]["ndcg@10"] and worst[0]["query"]
    assert len(worst[0]["top"]) == 3 and worst[0]["top"][0]["title"]
    evaluate_task(task, RetrievalEvalConfig(mode="bm25"), tmp_path, progress=False)
    from medrag.evaluation.report import write_report

    md = (Path(write_report(tmp_path)["markdown"])).read_text()
    assert "## Per-query analysis" in md and "| hybrid | bm25 | 6 |" in md and "| hybrid | dense | 6 |" in md
    assert "worst queries of hybrid" in md


def test_beir_folder(tmp_path, fixtures_dir):
    result = _run(["--benchmark", "beir", "--data", str(fixtures_dir / "eval" / "beir" / "mini-beir"),
                   "--mode", "bm25", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)["runs"]
    assert run["task"] == "mini-beir" and run["num_queries"] == 6 and run["metrics"]["ndcg@10"] > 0.5
    results = json.loads((tmp_path / "bm25" / "mini-beir" / "results.json").read_text())
    assert results["config"]["ignore_identical_ids"] is True and results["config"]["benchmark"] == "beir"
    assert load_beir_task(fixtures_dir / "eval" / "beir" / "mini-beir").qrels["Q1"]["D00"] == 2


def test_shared_biology_demo(tmp_path, shared_data):
    demo = shared_data / "r2med" / "Biology-demo"
    if not demo.is_dir():
        pytest.skip("Biology-demo absent")
    result = _run(["--data", str(demo), "--mode", "bm25", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)["runs"]
    assert run["task"] == "Biology-demo" and run["num_queries"] == 1  # one query has judgements
    hyde = demo / "hyde" / "qwen-7b" / "query_with_hydoc.jsonl"
    expanded = _run(["--data", str(demo), "--mode", "bm25", "--expand", "hyde", "--expansions", str(hyde),
                     "--out", str(tmp_path)])
    assert expanded.exit_code == 0, expanded.output
    assert (tmp_path / "bm25+hyde@precomputed" / "Biology-demo" / "run.trec").is_file()


def test_report_from_a_real_run(bm25_out, tmp_path):
    out, _ = bm25_out
    result = CliRunner().invoke(cli, ["eval", "report", str(out), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)
    md = (tmp_path / "report.md").read_text()
    assert "| medrag bm25 |" in md and "NV-Embed-v2" in md and "31.43" in md
    assert (tmp_path / "retrieval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written["retrieval_systems"] == ["bm25"]


def test_missing_data_is_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["eval", "retrieval", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Error: no r2med data given" in result.output and "huggingface.co/datasets/R2MED" in result.output
    assert "Traceback" not in result.output


def test_real_pubmedqa_retrieval_parity(tmp_path, shared_data):
    """A real run of our BM25 index over 200 real PubMedQA abstracts: pytrec_eval == trec_eval definition."""
    from medrag.evaluation.qa import load_pubmedqa, pubmedqa_as_beir

    path = shared_data / "pubmedqa" / "pqal_dev.json"
    if not path.is_file():
        pytest.skip("pubmedqa absent")
    folder = pubmedqa_as_beir(load_pubmedqa(path)[:200], tmp_path / "pqa-beir")
    task = load_beir_task(folder, name="PubMedQA-retrieval")
    outcome = evaluate_task(task, RetrievalEvalConfig(benchmark="beir", mode="bm25"), tmp_path / "out", progress=False)
    run = read_run(outcome.out_dir / "run.trec")
    per_query = json.loads((outcome.out_dir / "per_query.json").read_text())
    assert len(per_query) == 200
    for qid, qrels in task.qrels.items():
        assert per_query[qid]["ndcg@10"] == pytest.approx(reference_ndcg(qrels, run[qid]), abs=1e-6)
    assert outcome.aggregate["ndcg@10"] > 0.6  # a question's own abstract is easy to find
