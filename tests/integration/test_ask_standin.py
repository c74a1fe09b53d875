"""``medrag ask`` end to end over HTTP against the R1-style STAND-IN server (rules, not a model; see
medrag/testing/standin_r1.py): the biomed-r1-8b profile, thinking outputs, budget forcing in every stage,
both loop modes, the search-r1 protocol, progress on stderr, honest untrusted profiles."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from _toy_index import build_toy_index
from click.testing import CliRunner

from medrag.cli import cli
from medrag.ingest.store import Corpus
from medrag.testing.standin_r1 import StandinConfig, StandinServer
from medrag.testing.standin_rules import choose_option

Q = "Which anticoagulant for atrial fibrillation when creatinine clearance is 25 ml/min?"
OPTIONS = {"A": "insulin glargine", "B": "apixaban"}
DECOY = "decoy thinking line"  # in every stand-in thought: must never reach a query, answer or quote


@pytest.fixture(scope="module")
def toy(tmp_path_factory, fixtures_dir):
    root = build_toy_index(tmp_path_factory.mktemp("ask-standin"), fixtures_dir)
    return {"index": root / "index", "corpus": {c.chunk_id: c for c in Corpus.open(root / "corpus")}}


@pytest.fixture(scope="module")
def server():
    with StandinServer() as srv:
        yield srv


@pytest.fixture
def standin(server):
    """The module's server, reset to the default stand-in behaviour for each test."""
    server.config = StandinConfig()
    server.reset()
    return server


def _ask(toy, server, *extra, options=OPTIONS, profile="biomed-r1-8b"):
    args = ["ask", Q, "--index", str(toy["index"]), "--retrieval", "bm25", "--llm",
            f"openai:{server.url}#stand-in", "--profile", profile, "-k", "3", *extra]
    for key, text in (options or {}).items():
        args += ["--option", f"{key}={text}"]
    return CliRunner().invoke(cli, args)


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _check_citations(d, toy):
    assert d["citations"]
    for c in d["citations"]:
        chunk = toy["corpus"][c["chunk_id"]]  # resolves to an indexed chunk
        assert c["quote"] in chunk.text  # verbatim
        assert DECOY not in c["quote"]


def _no_decoys(d):
    assert DECOY not in d["answer"] and "Option Z" not in d["answer"]
    for step in d["trace"]:
        assert not any(DECOY in q for q in step["queries"])


def _forced(d, kind=None):
    return sum(s["usage"].get("budget_forced", 0) for s in d["trace"] if kind is None or s["kind"] == kind)


def _expected_option(toy, d):
    shown = " ".join(toy["corpus"][c].text for s in d["trace"] for r in s["retrievals"] for c in r["chunk_ids"])
    return choose_option(OPTIONS, shown, Q)


@pytest.mark.parametrize("mode", ["followup", "search-tags", "rag"])
def test_model_answers_with_verbatim_citations(toy, standin, mode):
    d = _json(_ask(toy, standin, "--mode", mode, "--rounds", "2", "--json"))
    assert d["answered_by"] == "model" and not d["insufficient_evidence"], d["notes"]
    _check_citations(d, toy)
    _no_decoys(d)
    assert d["option"] == "B" == _expected_option(toy, d)  # the stand-in's rule, known exactly
    assert _forced(d) == 0 and all(r.finish_reason == "stop" for r in standin.requests)
    llm_calls = sum(s["usage"]["llm_calls"] for s in d["trace"])
    assert llm_calls == len(standin.requests) and llm_calls >= 1
    assert sum(s["usage"]["completion_tokens"] for s in d["trace"]) == sum(r.completion_tokens for r in standin.requests)


def test_search_tags_speak_the_profiles_protocol(toy, standin):
    """biomed-r1-8b names the search-r1 protocol: one user turn, <think> prefill, evidence in <information>."""
    d = _json(_ask(toy, standin, "--mode", "search-tags", "--json"))
    assert d["answered_by"] == "model"
    prompts = [p for s in d["trace"] for p in s["prompts"]]
    assert "[system]" not in prompts[0] and prompts[0].rstrip().endswith("[assistant]\n<think>")
    assert "<information>\n[E1] (Title: " in prompts[1] and "</information>" in prompts[1]
    assert "<results>" not in prompts[1]
    assert [r.stage for r in standin.requests] == ["search", "search"]


@pytest.mark.parametrize("stage", ["queries", "followup", "final", "search"])
def test_thinking_overrun_in_one_stage_still_answers(toy, standin, stage):
    """The stand-in thinks 1500 tokens in one stage against a 64-token thinking budget (plus the answer budget): that stage's outputs end
    inside <think>; the think block is closed, the answer forced, and the run still ends with a cited answer."""
    standin.config = StandinConfig(think_by_stage={stage: 1500})
    mode = "search-tags" if stage == "search" else "followup"
    d = _json(_ask(toy, standin, "--mode", mode, "--rounds", "1", "--thinking-budget", "64", "--json"))
    cut = [r for r in standin.requests if r.finish_reason == "length"]
    assert cut and {r.stage for r in cut} == {stage}
    assert _forced(d) == len(cut)
    _no_decoys(d)
    if stage == "search":  # forced to answer before searching: an answer or a clean insufficiency note
        assert d["answered_by"] in ("model", "evidence")
        assert d["answered_by"] == "model" or d["insufficient_evidence"]
        assert d["citations"] and all(c["quote"] in toy["corpus"][c["chunk_id"]].text for c in d["citations"])
    else:
        assert d["answered_by"] == "model", d["notes"]
        _check_citations(d, toy)
        kinds = [s["kind"] for s in d["trace"]]
        assert kinds == ["retrieve", "follow-up", "final"]  # the round was not lost


@pytest.mark.parametrize("mode", ["followup", "search-tags", "rag"])
def test_thinking_overruns_every_budget(toy, standin, mode):
    standin.config = StandinConfig(think_tokens=1200)
    d = _json(_ask(toy, standin, "--mode", mode, "--rounds", "2", "--thinking-budget", "32", "--json"))
    cut = [r for r in standin.requests if r.finish_reason == "length"]
    first_calls = len(standin.requests) - len(cut)  # every first call was cut and continued once
    assert cut and _forced(d) == len(cut) == first_calls
    assert d["answered_by"] == "model" or (d["insufficient_evidence"] and d["citations"])
    _no_decoys(d)


def test_terminal_view_streams_progress_and_forcing_to_stderr(toy, standin):
    """Without --json the model's tokens stream (server-sent events) to stderr; stdout has the answer."""
    standin.config = StandinConfig(think_by_stage={"final": 1200})
    result = _ask(toy, standin, "--rounds", "1", "--thinking-budget", "final=48")
    assert result.exit_code == 0, result.output
    assert "Answer" in result.stdout and "Citations:" in result.stdout
    assert "ran out of thinking budget" in result.stderr and "Round 1" in result.stderr
    assert "Round 1" not in result.stdout  # progress never mixes into the answer
    assert all(r.stream for r in standin.requests if r.stage == "final")


def test_json_mode_streams_progress_to_stderr(toy, standin):
    """Issue 15: `ask --json` printed nothing for a minute; progress now goes to stderr in every mode."""
    for mode in ("followup", "rag", "search-tags"):
        result = _ask(toy, standin, "--mode", mode, "--rounds", "1", "--json")
        d = _json(result)
        assert d["answered_by"] == "model"
        assert "Retrieved" in result.stderr and "Loading the model" in result.stderr, mode


def test_untrusted_profile_never_generates_text_it_cannot_show(toy, standin):
    """Issue 15: --mode rag with an untrusted profile spent its time on a final answer that was discarded."""
    d = _json(_ask(toy, standin, "--mode", "rag", "--json", profile="chat-untrusted"))
    assert d["answered_by"] == "evidence" and standin.requests == []
    d = _json(_ask(toy, standin, "--rounds", "1", "--json", profile="chat-untrusted"))
    assert d["answered_by"] == "evidence" and "final" not in {r.stage for r in standin.requests}


def test_imedrag_paper_preset_runs_every_round(toy, standin):
    d = _json(_ask(toy, standin, "--preset", "imedrag-paper", "--json", options=None))
    kinds = [s["kind"] for s in d["trace"]]
    assert kinds.count("follow-up") == 4  # no early stop
    first = d["trace"][0]["retrievals"][0]["chunk_ids"]
    assert len(first) == 3  # -k 3 given explicitly wins over the preset's 32
    assert d["answered_by"] == "model"


def test_profile_file_and_unknown_keys(toy, standin, tmp_path):
    from medrag.config import MODEL_PROFILES

    data = json.loads(json.dumps({"name": "mine", "prompt_style": "chat", "clinical_answers": True,
                                  "budgets": {"final": {"thinking": 64, "answer": 300}}}))
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    d = _json(_ask(toy, standin, "--mode", "rag", "--json", profile=str(path)))
    assert d["answered_by"] == "model"
    path.write_text(json.dumps({**data, "budgets": {"final": {"thinking": 64, "answer": 300, "extra": 1}}}))
    result = _ask(toy, standin, "--mode", "rag", "--json", profile=str(path))
    assert result.exit_code != 0 and "unknown budgets.final key(s): extra" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3
    assert replace(MODEL_PROFILES["biomed-r1-8b"]).temperature == 0.6


def test_med_r3_protocol_from_a_profile_file(toy, standin, tmp_path):
    """A profile naming the med-r3 preset: system rules, <think> prefill, evidence lines in <documents>."""
    path = tmp_path / "medr3.json"
    path.write_text(json.dumps({"name": "medr3", "prompt_style": "chat", "search_protocol": "med-r3",
                                "budgets": {"search": {"thinking": 1024, "answer": 512}}}))
    d = _json(_ask(toy, standin, "--mode", "search-tags", "--json", profile=str(path)))
    assert d["answered_by"] == "model", d["notes"]
    prompts = [p for s in d["trace"] for p in s["prompts"]]
    assert prompts[0].startswith("[system]") and prompts[0].rstrip().endswith("<think>")
    assert "<documents>\n[E1] (Title: " in prompts[1] and "<answer>" in prompts[0]
    _check_citations(d, toy)
