"""The R1-style stand-in server on the wire (127.0.0.1): OpenAI shapes, vLLM-style reasoning split,
max_tokens/length, stop strings, streaming with usage — and medrag's HTTP backend reading it."""

from __future__ import annotations

import json

import httpx
import pytest

from medrag.config import MODEL_PROFILES
from medrag.llm import GenerationParams, load_llm
from medrag.testing.standin_r1 import StandinConfig, StandinServer
from medrag.testing.standin_rules import choose_option, count_tokens, tokenize

FINAL = [{"role": "system", "content": "rules"},
         {"role": "user", "content": "Question: Which anticoagulant when creatinine clearance is 25 ml/min?\nOptions:\nA. insulin\nB. apixaban\n\n<data>\n"
                                     '<evidence id="E1" title="t" section="s">\nApixaban is an option when '
                                     "creatinine clearance is between 15 and 29 ml/min.\n</evidence>\n</data>\n\n"
                                     "Answer the question using only the evidence above."}]


@pytest.fixture(scope="module")
def server():
    with StandinServer(StandinConfig(think_tokens=20)) as srv:
        yield srv


def _post(server, path, body):
    return httpx.post(server.url + path, json=body, timeout=10).json()


def test_tokenizer_is_lossless_and_counts():
    text = "Apixaban 2.5 mg  twice\ndaily [E1]."
    assert "".join(tokenize(text)) == text and count_tokens(text) == len(tokenize(text))


def test_chat_reply_split_like_vllms_reasoning_parser(server):
    d = _post(server, "/chat/completions", {"model": "stand-in", "messages": FINAL})
    msg = d["choices"][0]["message"]
    assert d["choices"][0]["finish_reason"] == "stop"
    assert count_tokens(msg["reasoning_content"].strip()) == 20 and "<think>" not in msg["reasoning_content"]
    assert "Option: B" in msg["content"] and '[E1] "Apixaban is an option' in msg["content"]
    assert d["usage"]["completion_tokens"] > 20 and d["usage"]["prompt_tokens"] > 40
    assert httpx.get(server.url + "/models").json()["data"][0]["id"] == "stand-in"


def test_max_tokens_cuts_inside_thinking(server):
    d = _post(server, "/chat/completions", {"messages": FINAL, "max_tokens": 8})
    choice = d["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["content"] is None
    assert d["usage"]["completion_tokens"] == 8


def test_completions_are_raw_and_honour_stop(server):
    prompt = ("Think inside <think> ... </think>. When you need medical evidence, write <search>a short search "
              "query</search> and stop; the top passages will then be shown to you between <information> and "
              "</information>, labelled E1.\n\nQuestion: Which anticoagulant in atrial fibrillation?\n<think>")
    d = _post(server, "/completions", {"prompt": prompt, "max_tokens": 500, "stop": ["</search>"]})
    text = d["choices"][0]["text"]
    assert d["choices"][0]["finish_reason"] == "stop" and text.rstrip().endswith("<search>anticoagulant atrial fibrillation")
    assert "</think>" in text and "<think>" not in text  # the prompt opened the think block


def test_streaming_events_and_backend_stream_generate(server):
    llm = load_llm(f"openai:{server.url}#stand-in", profile="biomed-r1-8b")
    try:
        pieces = []
        gen = llm.stream_generate(FINAL, GenerationParams(max_tokens=10), pieces.append)
        assert gen.finish_reason == "length" and gen.completion_tokens == 10 and gen.text.startswith("<think>")
        assert "</think>" not in gen.text and "".join(pieces) == gen.text
        full = llm.generate([FINAL], GenerationParams(max_tokens=400))[0]
        streamed = llm.stream_generate(FINAL, GenerationParams(max_tokens=400), lambda _: None)
        assert streamed.text == full.text and streamed.finish_reason == full.finish_reason == "stop"
        assert streamed.completion_tokens == full.completion_tokens
    finally:
        llm.close()
    assert server.requests[-1].stream and not server.requests[-2].stream


def test_qa_prompts_answer_by_a_known_rule(server):
    options = {"A": "metformin", "B": "apixaban", "C": "warfarin"}
    evidence = "Apixaban is preferred over warfarin; apixaban dose is reduced in older adults."
    prompt = (f"Documents: {evidence}\n\nQuestion: Which anticoagulant?\n" +
              "\n".join(f"{k}. {v}" for k, v in options.items()) + "\nAnswer with the option letter.")
    d = _post(server, "/chat/completions", {"messages": [{"role": "user", "content": prompt}]})
    assert d["choices"][0]["message"]["content"].strip() == "Answer: B" == f"Answer: {choose_option(options, evidence)}"
    json_prompt = prompt + '\nReply as {"step_by_step_thinking": ..., "answer_choice": ...}'
    d = _post(server, "/chat/completions", {"messages": [{"role": "user", "content": json_prompt}]})
    assert json.loads(d["choices"][0]["message"]["content"])["answer_choice"] == "B"
    assert choose_option(options, evidence, "Which anticoagulant?", oracle={"anticoagulant": "C"}) == "C"


def test_without_reasoning_parser_thinking_is_inline():
    with StandinServer(StandinConfig(think_tokens=5), reasoning_parser=False) as srv:
        llm = load_llm(f"openai:{srv.url}#stand-in", profile=MODEL_PROFILES["biomed-r1-8b"])
        try:
            text = llm.generate([FINAL])[0].text
        finally:
            llm.close()
    assert text.startswith("<think>") and "</think>" in text and "Option: B" in text
