"""QA: MIRAGE / PubMedQA loading, prompts, answer parsing, accuracy with std, and the resumable runner."""

from __future__ import annotations

import json

import pytest

from medrag.config import MODEL_PROFILES, MedRGBEvalConfig, QAEvalConfig
from medrag.errors import ConfigError, DataNotFoundError
from medrag.evaluation.medrgb import load_medrgb
from medrag.evaluation.qa import (
    accuracy_summary,
    chat_prompt,
    completion_prompt,
    load_mirage,
    load_pubmedqa,
    load_qa,
    parse_answer,
)
from medrag.evaluation.rag import run_medrgb, run_qa
from medrag.llm import Generation


class ScriptedLLM:
    """A stand-in model whose replies are fixed in advance, to check scoring and resumption exactly."""

    def __init__(self, reply, prompt_style="completion"):
        self.reply = reply
        self.name = "scripted"
        self.profile = MODEL_PROFILES["tiny-base" if prompt_style == "completion" else "chat"]
        self.prompts = []

    def generate(self, prompts, params=None):
        self.prompts.extend(prompts)
        return [Generation(self.reply(p)) for p in prompts]


@pytest.fixture(scope="module")
def pubmedqa(fixtures_dir):
    return load_pubmedqa(fixtures_dir / "eval" / "pubmedqa" / "pqal_fixture.json")


def test_loaders(fixtures_dir, pubmedqa):
    assert [i.answer for i in pubmedqa] == ["A", "B", "C", "A", "B", "A"]
    assert pubmedqa[0].gold_text == "yes" and "24 hours" in pubmedqa[0].context
    items = load_mirage(fixtures_dir / "eval" / "mirage" / "benchmark.json")
    assert len(items) == 5 and {i.dataset for i in items} == {"medqa", "bioasq"}
    only = load_qa("mirage", fixtures_dir / "eval" / "mirage" / "benchmark.json", ["bioasq"])
    assert [i.item_id for i in only] == ["b1", "b2"]
    with pytest.raises(DataNotFoundError, match="pubmedqa"):
        load_qa("pubmedqa", fixtures_dir / "eval" / "mirage")


def test_prompts(pubmedqa, fixtures_dir):
    prompt = completion_prompt(pubmedqa[0], pubmedqa[0].context, shots=3)
    assert prompt.count("Answer:") == 4 and prompt.endswith("Answer:")
    assert "A. yes" not in prompt  # word answers: no letters
    mcq = load_mirage(fixtures_dir / "eval" / "mirage" / "benchmark.json")[0]
    p = completion_prompt(mcq, "", shots=1)
    assert "B. Vitamin B12 deficiency" in p and p.count("Answer:") == 2
    assert chat_prompt(mcq)[0]["content"].startswith("Answer each medical question with the letter")


def test_parse_answer():
    ynm = (("A", "yes"), ("B", "no"), ("C", "maybe"))
    assert parse_answer(" Yes.", ynm) == "A"
    assert parse_answer("<think>maybe yes</think> no", ynm) == "B"
    assert parse_answer("unclear", ynm) is None
    abcd = (("A", "Iron"), ("B", "Protamine sulfate"), ("C", "K"), ("D", "Na"))
    assert parse_answer(" (B) because", abcd) == "B"
    assert parse_answer("protamine sulfate", abcd) == "B"
    assert parse_answer("I am not sure", abcd) is None


def test_accuracy_summary():
    golds = ["A"] * 6 + ["B"] * 3 + ["C"]
    preds = ["A"] * 5 + [None] + ["B", "A", "A", "C"]
    s = accuracy_summary(golds, preds, bootstrap=500, seed=1, labels={"A": "yes", "B": "no", "C": "maybe"})
    assert s["accuracy"] == 0.7 and s["unparsed"] == 1
    assert s["std_binomial"] == pytest.approx((0.7 * 0.3 / 10) ** 0.5)
    assert 0.08 < s["std_bootstrap"] < 0.2
    assert s["majority_label"] == "yes" and s["majority_baseline"] == 0.6
    assert s["prediction_distribution"] == {"yes": 7, "no": 1, "maybe": 1, "unparsed": 1}


def test_run_qa_scores_and_resumes(tmp_path, pubmedqa):
    llm = ScriptedLLM(lambda p: " yes\n")
    cfg = QAEvalConfig(benchmark="pubmedqa", bootstrap=100)
    res = run_qa(pubmedqa[:4], cfg, tmp_path, llm, progress=False)
    assert res["summary"]["accuracy"] == 0.5 and res["timing"]["generated_items"] == 4
    assert res["config"]["context"] == "gold" and res["versions"]["medrag"]
    assert res["model"]["profile"]["prompt_style"] == "completion"
    again = run_qa(pubmedqa, cfg, tmp_path, llm, progress=False)  # 2 new items only
    assert again["timing"]["generated_items"] == 2 and len(llm.prompts) == 6
    assert json.loads((tmp_path / "results.json").read_text())["summary"]["n"] == 6
    chat = ScriptedLLM(lambda p: "no", prompt_style="chat")
    other = run_qa(pubmedqa, cfg, tmp_path / "chat", chat, progress=False)
    assert isinstance(chat.prompts[0], list) and other["summary"]["accuracy"] == pytest.approx(2 / 6)


def test_config_checks():
    with pytest.raises(ConfigError, match="index"):
        QAEvalConfig(context="retrieved")
    with pytest.raises(ConfigError, match="p_sig"):
        MedRGBEvalConfig(p_sig=(10,))


def test_run_medrgb(tmp_path, fixtures_dir):
    questions = load_medrgb(fixtures_dir / "eval" / "medrgb")
    llm = ScriptedLLM(lambda p: '{"irrelevant_doc_ids": [], "answer_choice": "A"}', prompt_style="chat")
    cfg = MedRGBEvalConfig(scenario="sufficiency", p_sig=(0, 100), n_docs=5)
    res = run_medrgb(questions, cfg, tmp_path, llm, progress=False)
    assert set(res["metrics"]) == {"sufficiency/p0", "sufficiency/p100"}
    assert res["metrics"]["sufficiency/p100"]["accuracy"] == 0.5  # q-dka's answer is A, q-af's is B
    assert res["metrics"]["sufficiency/p0"]["noise_detection_rate"] == 0.0
    assert run_medrgb(questions, cfg, tmp_path, llm, progress=False)["timing"]["generated_items"] == 0
