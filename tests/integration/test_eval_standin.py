"""``medrag eval rag`` end to end over HTTP against the R1-style stand-in (``medrag.testing.standin_r1``) with
the ``biomed-r1-8b`` profile: the stand-in thinks (with decoy "Answer: …" lines in its thinking), then answers
by its oracle, so each benchmark's accuracy is known exactly — also when its thinking overruns the budget and
every answer has to be forced out of an open think block."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from medrag.cli import cli
from medrag.testing.standin_r1 import StandinConfig, StandinServer

#: question substring -> the stand-in's answer; wrong on purpose for m3, b2 (MIRAGE), 900003, 900005 (PubMedQA)
#: and q-dka (MedRGB)
MIRAGE_ORACLE = {"microcytic": "A", "heparin": "B", "peaked T waves": "A", "metformin": "A", "insulin": "A"}
PUBMEDQA_ORACLE = {"hip fracture": "A", "bronchitis": "B", "nurse-led": "A", "smoking": "A", "fish oil": "A",
                   "exercise": "A"}
MEDRGB_ORACLE = {"atrial fibrillation": "B", "ketoacidosis": "C"}


@pytest.fixture(scope="module")
def server():
    with StandinServer() as srv:
        yield srv


def _eval(server, tmp_path, oracle, think_tokens, *args):
    server.config = StandinConfig(think_tokens=think_tokens, oracle=oracle)
    server.reset()
    result = CliRunner().invoke(cli, ["eval", "rag", *args, "--llm", f"openai:{server.url}#stand-in",
                                      "--profile", "biomed-r1-8b", "--out", str(tmp_path), "--json", "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("thinking", [None, 32], ids=["within-budget", "overrun-forced"])
def test_mirage_accuracy_is_exact(server, tmp_path, fixtures_dir, thinking):
    extra = [] if thinking is None else ["--thinking-tokens", str(thinking)]
    res = _eval(server, tmp_path, MIRAGE_ORACLE, 200, "--benchmark", "mirage", "--data",
                str(fixtures_dir / "eval" / "mirage" / "benchmark.json"), *extra)
    s = res["summary"]
    assert s["n"] == 5 and s["accuracy"] == pytest.approx(3 / 5) and s["unparsed"] == 0
    assert res["datasets"]["medqa"]["accuracy"] == pytest.approx(2 / 3)
    assert res["datasets"]["bioasq"]["accuracy"] == pytest.approx(1 / 2)
    assert res["generation"]["forced_answers"] == (0 if thinking is None else 5)
    assert res["generation"]["thinking_tokens"] == (thinking or 2048)
    assert all(r.finish_reason == ("stop" if thinking is None else "length") for r in server.requests[:5])


def test_pubmedqa_accuracy_is_exact(server, tmp_path, fixtures_dir):
    res = _eval(server, tmp_path, PUBMEDQA_ORACLE, 100, "--benchmark", "pubmedqa", "--data",
                str(fixtures_dir / "eval" / "pubmedqa" / "pqal_fixture.json"))
    s = res["summary"]
    assert s["n"] == 6 and s["accuracy"] == pytest.approx(4 / 6) and s["unparsed"] == 0
    assert s["prediction_distribution"] == {"yes": 5, "no": 1}


def test_medrgb_accuracy_is_exact(server, tmp_path, fixtures_dir):
    res = _eval(server, tmp_path, MEDRGB_ORACLE, 200, "--benchmark", "medrgb", "--data",
                str(fixtures_dir / "eval" / "medrgb"), "--scenario", "standard", "--p-sig", "100",
                "--n-docs", "3", "--thinking-tokens", "16")
    (metrics,) = res["metrics"].values()
    assert metrics["n"] == 2 and metrics["accuracy"] == pytest.approx(1 / 2)
    assert sorted(i["choice"] for i in res["items"]) == ["B", "C"]
