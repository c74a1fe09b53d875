"""`medrag eval rag` end to end with the real offline model (packaged Gemma 3 270M via transformers)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from medrag.cli import cli
from medrag.config import RetrievalEvalConfig
from medrag.evaluation.data import load_r2med_task
from medrag.evaluation.retrieval import evaluate_task

pytestmark = pytest.mark.llm


def _rag(args):
    return CliRunner().invoke(cli, ["eval", "rag", *args, "--json", "-q"], catch_exceptions=False)


def test_pubmedqa_fixture_with_default_model(tmp_path, fixtures_dir):
    data = fixtures_dir / "eval" / "pubmedqa" / "pqal_fixture.json"
    args = ["--benchmark", "pubmedqa", "--data", str(data), "--limit", "4", "--out", str(tmp_path)]
    first = _rag(args)
    assert first.exit_code == 0, first.output
    res = json.loads(first.output)
    s = res["summary"]
    assert s["n"] == 4 and s["majority_label"] == "yes" and s["majority_baseline"] == 0.5
    assert s["unparsed"] <= 2  # the few-shot prompt makes the base model answer with a label
    assert res["model"]["profile"]["name"] == "tiny-base" and res["config"]["few_shot"] == 3
    again = json.loads(_rag(args).output)
    assert again["timing"]["generated_items"] == 0 and again["summary"] == s  # resumed, deterministic


def test_mirage_fixture(tmp_path, fixtures_dir):
    data = fixtures_dir / "eval" / "mirage" / "benchmark.json"
    result = _rag(["--benchmark", "mirage", "--data", str(data), "--dataset", "medqa", "--limit", "2",
                   "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    res = json.loads(result.output)
    assert res["summary"]["n"] == 2 and set(res["datasets"]) == {"medqa"}
    assert res["config"]["context"] == "none"


def test_medrgb_fixture(tmp_path, fixtures_dir):
    data = fixtures_dir / "eval" / "medrgb"
    result = _rag(["--benchmark", "medrgb", "--data", str(data), "--scenario", "sufficiency", "--p-sig", "40",
                   "--n-docs", "5", "--max-tokens", "24", "--limit", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    res = json.loads(result.output)
    (group,) = res["metrics"]
    assert group == "sufficiency/p40" and res["metrics"][group]["n"] == 1
    assert res["items"][0]["noise_shown"] == 3


def test_missing_medrgb_data(tmp_path):
    result = CliRunner().invoke(cli, ["eval", "rag", "--benchmark", "medrgb", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "ngotrnghia1811/MedRGB" in result.output and "Traceback" not in result.output


class Counting:
    """Wraps the real model to count generate() calls (checks that cached expansions are not regenerated)."""

    def __init__(self, llm):
        self.llm, self.calls = llm, 0
        self.name, self.profile = llm.name, llm.profile

    def generate(self, prompts, params=None):
        self.calls += 1
        return self.llm.generate(prompts, params)


def test_query2doc_expansion_with_default_model_is_cached(tmp_path, fixtures_dir):
    from medrag.llm import load_llm

    full = load_r2med_task(fixtures_dir / "eval" / "r2med" / "Cardio-Mini")
    keep = ("q1", "q4", "q6")
    task = dataclasses.replace(full, queries={q: full.queries[q] for q in keep}, qrels={q: full.qrels[q] for q in keep})
    cfg = RetrievalEvalConfig(mode="bm25", expand="query2doc", expansion_max_tokens=16)
    with load_llm(None) as real:
        llm = Counting(real)
        first = evaluate_task(task, cfg, tmp_path, llm=llm, progress=False)
        calls = llm.calls
        second = evaluate_task(task, cfg, tmp_path, llm=llm, progress=False)
    assert calls >= 1 and llm.calls == calls  # second run: every generation came from the cache
    assert first.aggregate == second.aggregate
    expansions = json.loads((first.out_dir / "expansions.json").read_text())
    assert set(expansions) == set(task.queries)


@pytest.fixture(scope="module")
def cardio_index(tmp_path_factory, fixtures_dir):
    from medrag.config import IndexConfig
    from medrag.evaluation.retrieval import prepare_index

    task = load_r2med_task(fixtures_dir / "eval" / "r2med" / "Cardio-Mini")
    return prepare_index(task, tmp_path_factory.mktemp("cache"), IndexConfig(dense=False), progress=False)


def test_retrieved_context_comes_from_the_index(tmp_path, fixtures_dir, cardio_index):
    from medrag.config import MODEL_PROFILES, QAEvalConfig
    from medrag.evaluation.qa import load_mirage
    from medrag.evaluation.rag import run_qa
    from medrag.llm import Generation
    from medrag.retrieve import load_index

    class Echo:  # records prompts; answers "A"
        name, profile = "echo", MODEL_PROFILES["tiny-base"]
        prompts: list = []

        def generate(self, prompts, params=None):
            self.prompts.extend(prompts)
            return [Generation(" A") for _ in prompts]

    items = [i for i in load_mirage(fixtures_dir / "eval" / "mirage" / "benchmark.json") if i.item_id == "m2"]
    cfg = QAEvalConfig(benchmark="mirage", context="retrieved", index=str(cardio_index), k=2)
    llm = Echo()
    res = run_qa(items, cfg, tmp_path, llm, retriever=load_index(cardio_index, mode="bm25"), progress=False)
    assert res["summary"]["n"] == 1 and "Context: [1] " in llm.prompts[0]


def test_loop_answers_through_follow_up_loop(tmp_path, fixtures_dir, cardio_index):
    data = fixtures_dir / "eval" / "mirage" / "benchmark.json"
    result = _rag(["--benchmark", "mirage", "--data", str(data), "--dataset", "medqa", "--limit", "1", "--loop",
                   "--index", str(cardio_index), "--loop-rounds", "1", "--loop-queries", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    res = json.loads(result.output)
    assert res["config"]["loop"] is True and res["loop_config"]["rounds"] == 1 and res["summary"]["n"] == 1


@pytest.mark.slow
def test_reason_expansion_with_default_model(tmp_path, fixtures_dir):
    """--expand reason: the follow-up loop's queries are appended to the query (slow: the loop runs per query)."""
    result = CliRunner().invoke(cli, [
        "eval", "retrieval", "--data", str(fixtures_dir / "eval" / "r2med"), "--mode", "bm25", "--expand", "reason",
        "--loop-rounds", "1", "--loop-queries", "1", "--out", str(tmp_path), "--json", "-q"])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)["runs"]
    assert run["system"] == "bm25+reason@default"
    results = json.loads((tmp_path / run["system"] / "Cardio-Mini" / "results.json").read_text())
    assert results["loop_config"]["rounds"] == 1
    expansions = json.loads((tmp_path / run["system"] / "Cardio-Mini" / "expansions.json").read_text())
    assert len(expansions) == 6
