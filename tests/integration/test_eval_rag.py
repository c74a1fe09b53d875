"""`medrag eval rag` end to end with the real offline model (packaged Gemma 3 270M via llama.cpp)."""

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
