"""The OpenAI-compatible backend's request building, retries and parsing, against httpx.MockTransport.

The same backend is exercised against a real llama.cpp server and real misbehaving loopback servers in
tests/integration/test_llm_openai_server.py.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from medrag.config import MODEL_PROFILES, LLMConfig
from medrag.errors import BackendUnavailableError, ConfigError, LLMError
from medrag.llm import GenerationParams
from medrag.llm.openai_http import OpenAILLM, backoff_delay

URL = "http://test.local/v1"


def _completion(text="ok", **extra):
    return {"choices": [{"text": text, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            **extra}


def _chat(content="ok", reasoning=None):
    msg = {"role": "assistant", "content": content}
    if reasoning:
        msg["reasoning_content"] = reasoning
    return {"choices": [{"message": msg, "finish_reason": "stop"}]}


def _llm(handler, profile="tiny-base", sleeps=None, **cfg):
    sleeps = sleeps if sleeps is not None else []
    return OpenAILLM(URL, "m", MODEL_PROFILES[profile], LLMConfig(**cfg), transport=httpx.MockTransport(handler),
                     sleep=sleeps.append)


def test_completion_payload_and_stops():
    seen = []

    def handler(req):
        seen.append((req.url.path, json.loads(req.content)))
        return httpx.Response(200, json=_completion(" The pancreas\n\nQuestion: more"))

    out = _llm(handler).generate(["Q: insulin?\nA:"], GenerationParams(max_tokens=8, stop=("\n\n",)))
    path, body = seen[0]
    assert path == "/v1/completions" and body["prompt"] == "Q: insulin?\nA:" and body["max_tokens"] == 8
    assert body["stop"][0] == "\n\n" and len(body["stop"]) <= 4
    assert out[0].text == " The pancreas" and out[0].prompt_tokens == 3


def test_chat_payload_continuation_and_reasoning_content():
    seen = []

    def handler(req):
        seen.append(json.loads(req.content))
        return httpx.Response(200, json=_chat("Answer: x", reasoning="let me think"))

    llm = _llm(handler, profile="reasoning")
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
            {"role": "assistant", "content": "<think>so far"}]
    out = llm.generate([msgs, "plain string"])
    assert seen[0]["messages"][-1] == {"role": "assistant", "content": "<think>so far"}
    assert seen[0]["continue_final_message"] is True and seen[0]["add_generation_prompt"] is False
    assert seen[1]["messages"] == [{"role": "user", "content": "plain string"}] and "continue_final_message" not in seen[1]
    # the continued message left its think block open: the reasoning continues it (no second open tag)
    assert out[0].text == "let me think</think>Answer: x"


def test_retries_with_backoff_then_success():
    status = iter([503, 429, 200])
    sleeps = []

    def handler(req):
        code = next(status)
        if code != 200:
            return httpx.Response(code, headers={"retry-after": "0.25"} if code == 429 else {})
        return httpx.Response(200, json=_completion("fine"))

    out = _llm(handler, sleeps=sleeps, max_retries=3, backoff_base=0.5).generate(["x"])
    assert out[0].text == "fine"
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and sleeps[1] == 0.25  # jittered 2^0 base, Retry-After


def test_timeouts_retried_then_llm_error():
    calls = []

    def handler(req):
        calls.append(1)
        raise httpx.ReadTimeout("slow", request=req)

    with pytest.raises(LLMError, match="timed out.*3 attempts"):
        _llm(handler, max_retries=2).generate(["x"])
    assert len(calls) == 3


def test_unreachable_server_is_backend_unavailable():
    def handler(req):
        raise httpx.ConnectError("refused", request=req)

    with pytest.raises(BackendUnavailableError, match="cannot connect"):
        _llm(handler, max_retries=1).generate(["x"])


@pytest.mark.parametrize("response, match", [
    (httpx.Response(200, text="<html>proxy error</html>"), "not JSON"),
    (httpx.Response(200, json={"choices": []}), "not an OpenAI completion"),
    (httpx.Response(200, json={"choices": [{"nope": 1}]}), "no text"),
    (httpx.Response(401, text="bad key"), "OPENAI_API_KEY"),
])
def test_garbage_and_client_errors_fail_without_retry(response, match):
    calls = []

    def handler(req):
        calls.append(1)
        return response

    with pytest.raises(LLMError, match=match):
        _llm(handler, max_retries=3).generate(["x"])
    assert len(calls) == 1


def test_api_key_from_named_env_var(monkeypatch):
    headers = []

    def handler(req):
        headers.append(req.headers.get("authorization"))
        return httpx.Response(200, json=_completion())

    _llm(handler, api_key_env="MY_TEST_KEY").generate(["x"])
    monkeypatch.setenv("MY_TEST_KEY", "sekret")
    _llm(handler, api_key_env="MY_TEST_KEY").generate(["x"])
    assert headers == [None, "Bearer sekret"]


def test_concurrency_limit_and_order():
    lock, active, peak = threading.Lock(), [0], [0]

    def handler(req):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return httpx.Response(200, json=_completion(json.loads(req.content)["prompt"].upper()))

    t0 = time.perf_counter()
    out = _llm(handler, concurrency=3).generate([f"p{i}" for i in range(9)])
    elapsed = time.perf_counter() - t0
    assert [g.text for g in out] == [f"P{i}" for i in range(9)]
    assert peak[0] == 3
    assert elapsed < 9 * 0.05  # ran concurrently


def test_model_discovery():
    def handler(req):
        if req.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "only-model"}]})
        return httpx.Response(200, json=_completion())

    llm = OpenAILLM(URL, None, MODEL_PROFILES["tiny-base"], transport=httpx.MockTransport(handler))
    assert llm.model == "only-model" and llm.name.endswith("#only-model")

    def two(req):
        return httpx.Response(200, json={"data": [{"id": "a"}, {"id": "b"}]})

    with pytest.raises(ConfigError, match="name one"):
        OpenAILLM(URL, None, MODEL_PROFILES["tiny-base"], transport=httpx.MockTransport(two))


def test_sse_stream_with_reasoning_deltas():
    events = [{"choices": [{"delta": {"reasoning_content": "hm"}}]},
              {"choices": [{"delta": {"reasoning_content": "m"}}]},
              {"choices": [{"delta": {"content": "Answer"}}]},
              {"choices": [{"delta": {"content": ": x"}}]}]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"

    def handler(req):
        assert json.loads(req.content)["stream"] is True
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    pieces = list(_llm(handler, profile="reasoning").stream([{"role": "user", "content": "q"}]))
    assert "".join(pieces) == "<think>hmm</think>Answer: x"


def test_backoff_delay_caps():
    assert backoff_delay(10, 0.5, 8.0, rng=lambda: 1.0) == 8.0
    assert backoff_delay(0, 0.5, 8.0, rng=lambda: 0.0) == 0.25
    assert backoff_delay(0, 0.5, 8.0, retry_after="100") == 8.0
