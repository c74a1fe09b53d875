"""Thinking blocks, budgets and budget forcing; model profiles as data files."""

from __future__ import annotations

import json

import httpx
import pytest

from medrag.config import (
    MODEL_PROFILES,
    SEARCH_PROTOCOLS,
    STAGES,
    LoopConfig,
    ModelProfile,
    StageBudget,
    StageBudgets,
)
from medrag.errors import ConfigError
from medrag.llm import GenerationParams
from medrag.llm.openai_http import OpenAILLM
from medrag.llm.thinking import ends_in_think, generate_budgeted, split_think, visible_text, was_forced
from medrag.reason.parsing import parse_final
from medrag.reason.testing import ScriptedLLM

T = ("<think>", "</think>")


def test_unclosed_think_never_leaks():
    assert split_think("<think>maybe Answer: A", *T) == ("maybe Answer: A", "")
    assert split_think("pre <think>x</think> post", *T) == ("x", "pre  post")
    assert split_think("template opened it</think>Answer: B", *T) == ("template opened it", "Answer: B")
    # the template (or a prefill) opened the block and the output ran out before closing it: all thinking
    assert split_think("still thinking, Answer: A", *T, opened=True) == ("still thinking, Answer: A", "")
    assert split_think("still thinking, Answer: A", *T) == ("", "still thinking, Answer: A")
    assert visible_text("Answer: C", MODEL_PROFILES["r1"]) == ""  # r1: the template opens <think>
    assert ends_in_think("<think>a</think><think>b", *T) and not ends_in_think("<think>a</think>", *T)
    assert ends_in_think("no tags", *T, opened=True) and not ends_in_think("no tags", *T)


def test_budget_forcing_closes_thinking_and_continues_once():
    long_thought = "<think>" + " hmm" * 100
    llm = ScriptedLLM([(r"</think>\nAnswer:$", " apixaban [E1]"), (r"question", long_thought)],
                      profile=MODEL_PROFILES["biomed-r1-8b"])
    budget = StageBudget(thinking=20, answer=10)
    [gen] = generate_budgeted(llm.generate, [[{"role": "user", "content": "question"}]], llm.profile, budget,
                              GenerationParams(), cue="Answer:")
    assert was_forced(gen) and gen.finish_reason == "stop"
    assert len(llm.calls) == 2 and llm.calls[1][0].endswith("</think>\nAnswer:")
    assert gen.completion_tokens == 30 + 3  # the first call's 30 tokens + the continuation's 3
    assert parse_final(visible_text(gen.text, llm.profile)).answer == "apixaban [E1]"


def test_no_forcing_when_thinking_closed_or_model_does_not_think():
    llm = ScriptedLLM([(r".", "<think>short</think>Answer: x")], profile=MODEL_PROFILES["biomed-r1-8b"])
    [gen] = generate_budgeted(llm.generate, ["q"], llm.profile, StageBudget(100, 10), GenerationParams())
    assert not was_forced(gen) and len(llm.calls) == 1
    chat = ScriptedLLM([(r".", "word " * 50)], profile="chat")
    [gen] = generate_budgeted(chat.generate, ["q"], chat.profile, StageBudget(1000, 10), GenerationParams())
    assert gen.finish_reason == "length" and gen.completion_tokens == 10  # answer budget only, nothing forced
    assert not was_forced(gen) and len(chat.calls) == 1


def test_packaged_profiles_are_data_files():
    assert {"tiny-base", "chat", "reasoning", "chat-untrusted", "biomed-r1-8b", "medix-r1-8b", "r1"} <= set(MODEL_PROFILES)
    bio = MODEL_PROFILES["biomed-r1-8b"]
    assert (bio.hub_id, bio.temperature, bio.top_p, bio.max_model_len) == ("zou-lab/BioMed-R1-8B", 0.6, 0.95, 32768)
    assert bio.protocol is SEARCH_PROTOCOLS["search-r1"] and bio.budgets.final.thinking >= 1024
    assert MODEL_PROFILES["medix-r1-8b"].hub_id == "MBZUAI/MediX-R1-8B"
    assert MODEL_PROFILES["r1"].think_prefill and not MODEL_PROFILES["r1"].system_role
    tiny = MODEL_PROFILES["tiny-base"]
    assert not tiny.clinical_answers and tiny.template_source == "none" and not tiny.thinks


def test_profile_validation_and_budget_overrides():
    with pytest.raises(ConfigError, match="unknown budgets key"):
        ModelProfile.from_dict({"budgets": {"finall": {"answer": 3}}})
    with pytest.raises(ConfigError, match="unknown search_protocol key"):
        ModelProfile.from_dict({"search_protocol": {"name": "x", "tag": "<s>"}})
    with pytest.raises(ConfigError, match="unknown search_protocol"):
        ModelProfile.from_dict({"search_protocol": "nope"})
    custom = ModelProfile.from_dict({"search_protocol": {"name": "mine", "search_open": "<q>", "search_close": "</q>"}})
    assert custom.protocol.search_open == "<q>"
    b = StageBudgets().with_overrides({"*": 500}, {"final": 99})
    assert all(b.of(s).thinking == 500 for s in STAGES) and b.final.answer == 99 and b.queries.answer == 96
    with pytest.raises(ConfigError, match="unknown budget stage"):
        StageBudgets().with_overrides({"nope": 1})
    assert LoopConfig().budgets_for(MODEL_PROFILES["biomed-r1-8b"]) is MODEL_PROFILES["biomed-r1-8b"].budgets


def _openai(handler, profile="biomed-r1-8b"):
    return OpenAILLM("http://x/v1", "m", MODEL_PROFILES[profile], transport=httpx.MockTransport(handler))


def test_reasoning_cut_for_length_stays_open():
    """vLLM's reasoning parser returns the unfinished thinking with content null: the block must stay open."""
    def handler(req):
        return httpx.Response(200, json={"choices": [{"message": {"reasoning_content": "long thought",
                                                                  "content": None}, "finish_reason": "length"}],
                                         "usage": {"prompt_tokens": 5, "completion_tokens": 7}})

    [gen] = _openai(handler).generate([[{"role": "user", "content": "q"}]])
    assert gen.text == "<think>long thought" and gen.finish_reason == "length" and gen.completion_tokens == 7
    assert visible_text(gen.text, MODEL_PROFILES["biomed-r1-8b"]) == ""


def test_continuation_after_closed_thinking_is_text():
    """The deepseek_r1 parser labels an untagged continuation as reasoning; after a closed block it is the
    answer itself."""
    def handler(req):
        return httpx.Response(200, json={"choices": [{"message": {"reasoning_content": " apixaban [E1]",
                                                                  "content": None}, "finish_reason": "stop"}]})

    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>x\n</think>\nAnswer:"}]
    [gen] = _openai(handler).generate([msgs])
    assert gen.text == " apixaban [E1]"


def test_stream_generate_reports_finish_reason_and_usage():
    events = [{"choices": [{"delta": {"reasoning_content": "hm"}, "finish_reason": None}]},
              {"choices": [{"delta": {}, "finish_reason": "length"}]},
              {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"

    def handler(req):
        assert json.loads(req.content)["stream_options"] == {"include_usage": True}
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    pieces = []
    gen = _openai(handler).stream_generate([{"role": "user", "content": "q"}], None, pieces.append)
    assert (gen.text, gen.finish_reason, gen.prompt_tokens, gen.completion_tokens) == ("<think>hm", "length", 3, 1)
    assert pieces == ["<think>hm"]
