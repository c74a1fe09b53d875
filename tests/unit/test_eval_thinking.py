"""Evaluation scores what a reasoning model *answers*, never what it thought: unclosed think blocks, thinking
and answer budgets, budget forcing, and QA/MedRGB/expansion all reading the visible answer only."""

from __future__ import annotations

import json

import pytest

from medrag.config import MODEL_PROFILES, MedRGBEvalConfig, QAEvalConfig, StageBudget
from medrag.evaluation.expansion import expand_queries
from medrag.evaluation.generation import generate_stage, stage_budget
from medrag.evaluation.medrgb import load_medrgb
from medrag.evaluation.qa import QAItem, load_mirage, parse_answer, visible_answer
from medrag.evaluation.rag import qa_context_size, run_medrgb, run_qa
from medrag.llm import Generation

ABCD = (("A", "Iron"), ("B", "Protamine sulfate"), ("C", "K"), ("D", "Na"))
YN = (("A", "yes"), ("B", "no"))


class ThinkingLLM:
    """A reasoning model on the wire: thinks ``think_words`` words (one token each) mentioning option "A",
    then answers ``answer``; honours max_tokens (finish_reason "length") and continues an assistant prefix."""

    def __init__(self, answer="B", think_words=50, profile="reasoning"):
        self.name, self.profile = "thinker", MODEL_PROFILES[profile]
        self.answer, self.think_words = answer, think_words
        self.calls = []

    def generate(self, prompts, params):
        self.calls.append((list(prompts), params))
        out = []
        for p in prompts:
            continuing = not isinstance(p, str) and p[-1]["role"] == "assistant" or isinstance(p, str) and "</think>" in p
            words = [self.answer] if continuing else (
                ["<think>"] + ["maybe", "A"] * (self.think_words // 2) + ["</think>", self.answer])
            cut = words[: params.max_tokens]
            out.append(Generation(" ".join(cut), "length" if len(cut) < len(words) else "stop"))
        return out


def test_unclosed_think_never_becomes_the_answer():
    assert parse_answer("<think>A is tempting but the answer is", ABCD) is None  # cut off while thinking
    assert parse_answer("<think>A seems right</think> B", ABCD) == "B"
    assert parse_answer("A looks right, but</think>\nAnswer: B", ABCD) == "B"  # template-opened block
    assert parse_answer("<think>yes, clearly", YN) is None
    assert parse_answer("<think>yes?</think>no", YN) == "B"
    assert visible_answer("<think>unfinished A", "<think>", "</think>") == ""
    assert parse_answer("[[A]] <|x|>", ABCD, think_open=None, think_close=None) == "A"


def test_budget_forcing_closes_an_overrun_think_block():
    llm = ThinkingLLM(answer="C", think_words=5000)
    (g,) = generate_stage(llm, ["Question?\nAnswer:"], StageBudget(thinking=100, answer=3))
    first, second = llm.calls
    assert first[1].max_tokens == 103 and second[1].max_tokens == 3
    assert g.forced and g.text.endswith("</think>\nAnswer:C")
    assert parse_answer(g.text, ABCD) == "C"
    chat = ThinkingLLM(answer="D", think_words=5000)
    (g,) = generate_stage(chat, [[{"role": "user", "content": "Q?"}]], StageBudget(thinking=10, answer=3))
    assert chat.calls[1][0][0][-1]["role"] == "assistant" and parse_answer(g.text, ABCD) == "D"
    within = ThinkingLLM(answer="B", think_words=20)
    qa = MODEL_PROFILES["reasoning"].budgets.qa
    (g,) = generate_stage(within, ["Q"], stage_budget(within, "qa"))
    assert not g.forced and len(within.calls) == 1 and within.calls[0][1].max_tokens == qa.thinking + qa.answer
    plain = ThinkingLLM(profile="tiny-base")
    assert stage_budget(plain, "qa", thinking=500) == StageBudget(thinking=0, answer=3)
    assert stage_budget(within, "medrgb", answer=99).answer == 99


def test_stop_applies_to_the_answer_not_the_thinking():
    class Newlines(ThinkingLLM):
        def generate(self, prompts, params):
            self.calls.append((list(prompts), params))
            return [Generation("<think>line one\nline A\n</think>\nB\nmore text", "stop") for _ in prompts]

    llm = Newlines()
    (g,) = generate_stage(llm, ["Q"], StageBudget(thinking=50, answer=3), stop=("\n",))
    assert llm.calls[0][1].stop == () and g.text.endswith("</think>\nB")


def test_qa_scores_the_visible_answer_with_thinking_budgets(tmp_path, fixtures_dir):
    items = [it for it in load_mirage(fixtures_dir / "eval" / "mirage" / "benchmark.json") if it.dataset == "medqa"]
    golds = [it.answer for it in items]
    llm = ThinkingLLM(answer="B", think_words=400)  # thinks past the budget on every item, mentioning "A"
    cfg = QAEvalConfig(benchmark="mirage", context="none", thinking_tokens=64, bootstrap=50)
    res = run_qa(items, cfg, tmp_path, llm, progress=False)
    assert res["summary"]["accuracy"] == pytest.approx(golds.count("B") / len(items))
    assert res["summary"]["unparsed"] == 0 and res["generation"]["forced_answers"] == len(items)
    assert res["generation"]["thinking_tokens"] == 64 and res["generation"]["answer_tokens"] == 64  # reasoning qa
    mute = ThinkingLLM(answer="(none)", think_words=400)
    res = run_qa(items, cfg, tmp_path / "mute", mute, progress=False)
    assert res["summary"]["accuracy"] == 0.0 and res["summary"]["unparsed_rate"] == 1.0


def test_context_is_sized_like_medrag_for_trusted_profiles():
    trusted, tiny = ThinkingLLM(), ThinkingLLM(profile="tiny-base")
    assert qa_context_size(QAEvalConfig(), trusted) == (32, None)
    assert qa_context_size(QAEvalConfig(), tiny) == (5, 1500)
    assert qa_context_size(QAEvalConfig(k=8, context_chars=900), trusted) == (8, 900)


def test_medrgb_and_expansion_ignore_thinking(tmp_path, fixtures_dir):
    class JsonThinker(ThinkingLLM):
        def generate(self, prompts, params):
            self.calls.append((list(prompts), params))
            return [Generation('<think>{"answer_choice": "A"} no wait</think>{"answer_choice": "B"}') for _ in prompts]

    questions = load_medrgb(fixtures_dir / "eval" / "medrgb")
    cfg = MedRGBEvalConfig(scenario="standard", p_sig=(100,), n_docs=3)
    res = run_medrgb(questions, cfg, tmp_path, JsonThinker(), progress=False)
    assert [i["choice"] for i in res["items"]] == ["B"] * len(res["items"])
    out = expand_queries({"q1": "heparin reversal"}, "hyde", tmp_path, llm=ThinkingLLM(answer="Protamine", think_words=900),
                         max_tokens=16, thinking_tokens=32)
    assert out == {"q1": "Protamine"}


def test_word_item_parsing_ignores_letters():
    item = QAItem("b", "Is it?", YN, "A")
    assert parse_answer("<think>no no no</think> Yes", item.options) == "A"


def _loop_items():
    options = (("A", "Warfarin"), ("B", "Apixaban"), ("C", "Dabigatran"), ("D", "Aspirin"))
    return [QAItem("af", "Which anticoagulant for atrial fibrillation with creatinine clearance 25 ml/min?",
                   options, "B", dataset="toy"),
            QAItem("zz", "Which zebra quagga hybrid is called a zorse?", options, "D", dataset="toy")]


def test_loop_mode_scores_the_models_own_choice(tmp_path, fixtures_dir):
    """The model's final option is scored even when the evidence view would name another (word match), and
    a question whose retrieval passes no relevance floor is asked directly instead of being skipped."""
    from medrag.config import LoopConfig
    from medrag.reason.testing import ScriptedLLM, ToyRetriever

    retriever = ToyRetriever.from_jsonl(fixtures_dir / "reason" / "chunks.jsonl")
    final = ("<think>Option B (apixaban) is named in E1, but</think>Reasoning: my own view.\n"
             "Answer: Dabigatran [E1].\nOption: C\nQuotes:\n[E1] \"apixaban\"")
    llm = ScriptedLLM([(r"new, specific search queries", "ENOUGH"), (r"Reply in exactly this format", final),
                       (r"Reply with the option letter only", "<think>A? B?</think> D")], profile="reasoning")
    cfg = QAEvalConfig(benchmark="mirage", loop=True, index="toy", bootstrap=0)
    res = run_qa(_loop_items(), cfg, tmp_path, llm, retriever=retriever, loop_config=LoopConfig(rounds=1),
                 progress=False)
    rows = [json.loads(line) for line in next(tmp_path.glob("predictions-*.jsonl")).read_text().splitlines()]
    by_id = {r["key"]: r["value"] for r in rows}
    assert by_id["af"]["prediction"] == "C" and by_id["af"]["asked"] == "loop"  # not the evidence's "B"
    assert by_id["zz"]["prediction"] == "D" and by_id["zz"]["asked"] == "direct"
    assert res["summary"]["accuracy"] == 0.5 and res["generation"]["asked"] == {"loop": 1, "direct": 1}
