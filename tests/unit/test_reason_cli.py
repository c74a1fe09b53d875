"""CLI helpers of `medrag ask`: option parsing, the terminal view, JSONL traces, medrag.ask plumbing."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

import medrag
from medrag.errors import ConfigError
from medrag.reason.cli import parse_option_args, render_answer, save_trace
from medrag.reason.testing import ScriptedLLM, ToyRetriever

FINAL = ("Answer: Apixaban is an option in atrial fibrillation when creatinine clearance is between 15 and 29 "
         "ml/min [E1].\nOption: A\nQuotes:\n[E1] \"Apixaban is an option when creatinine clearance is between 15 "
         "and 29 ml/min.\"")


@pytest.fixture
def answer(fixtures_dir):
    retriever = ToyRetriever.from_jsonl(fixtures_dir / "reason" / "chunks.jsonl")
    llm = ScriptedLLM([(r"search queries", "ENOUGH"), (r"Reply in exactly", FINAL)])
    return medrag.ask("Which anticoagulant for atrial fibrillation with creatinine clearance 25 ml/min?",
                      index=retriever, llm=llm, options={"A": "apixaban", "B": "dabigatran"})


def test_parse_option_args():
    assert parse_option_args(('A="aspirin"', "b=heparin 5000 units")) == {"A": "aspirin", "B": "heparin 5000 units"}
    assert parse_option_args(("aspirin", "dose=5 mg")) == {"A": "aspirin", "B": "dose=5 mg"}
    with pytest.raises(ConfigError):
        parse_option_args(("A=", ))
    with pytest.raises(ConfigError):
        parse_option_args(("A=x", "A=y"))


def test_render_answer_shows_checked_citations(answer):
    @click.command()
    def show():
        render_answer(answer)

    out = CliRunner().invoke(show).output
    assert answer.answered_by == "model" and answer.option == "A"
    assert "Chosen option: A" in out and "[1] Anticoagulation in atrial fibrillation (toy, PMID 90000001" in out
    assert "chunk toy:af-doac#0" in out and "Apixaban is an option when creatinine" in out
    assert "not medical advice" in out


def test_save_trace_jsonl(answer, tmp_path):
    path = tmp_path / "t.jsonl"
    save_trace(answer, path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["kind"] for x in lines] == [t.kind for t in answer.trace] + ["answer"]
    assert lines[-1]["answer"]["option"] == "A" and "trace" not in lines[-1]["answer"]
    assert all(x["question"] == answer.question for x in lines)


def test_ask_rejects_unknown_options_and_bad_mode(fixtures_dir):
    retriever = ToyRetriever.from_jsonl(fixtures_dir / "reason" / "chunks.jsonl")
    llm = ScriptedLLM([(r".", "ENOUGH")])
    with pytest.raises(ConfigError, match="unknown ask option"):
        medrag.ask("q about apixaban", index=retriever, llm=llm, temprature=0.3)
    with pytest.raises(ConfigError, match="mode"):
        medrag.ask("q about apixaban", index=retriever, llm=llm, mode="magic")
    with pytest.raises(ConfigError, match="only when llm is a spec"):
        medrag.ask("q about apixaban", index=retriever, llm=llm, n_threads=2)
