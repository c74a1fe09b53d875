"""Spec strings, model profiles, generation params and prompt helpers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medrag.config import MODEL_PROFILES, LLMConfig, ModelProfile
from medrag.errors import ConfigError, DependencyMissingError
from medrag.llm import GenerationParams, load_llm, parse_spec, resolve_profile
from medrag.llm.base import apply_stops, check_prompts, fold_system, merge_stops, render_plain


def test_parse_spec_forms():
    assert parse_spec(None).is_default and parse_spec("default").backend == "transformers"
    s = parse_spec("llamacpp:/m/x.gguf")
    assert (s.backend, s.model, s.is_default) == ("llamacpp", "/m/x.gguf", False)
    s = parse_spec("openai:http://127.0.0.1:8000/v1/#org/model-8b")
    assert (s.backend, s.base_url, s.model) == ("openai", "http://127.0.0.1:8000/v1", "org/model-8b")
    assert parse_spec("openai:https://h/v1").model is None
    assert parse_spec("vllm:zou-lab/BioMed-R1-8B").model == "zou-lab/BioMed-R1-8B"
    assert str(parse_spec("openai:http://h:1/v1#m")) == "openai:http://h:1/v1#m"


@pytest.mark.parametrize("bad", ["gpt4", "ollama:x", "llamacpp:", "openai:localhost:8000", "openai:ftp://x"])
def test_bad_specs(bad):
    with pytest.raises(ConfigError):
        parse_spec(bad)


def test_profiles_are_explicit_not_sniffed(tmp_path):
    # the default gets tiny-base because it is the default; the same file named explicitly gets reasoning
    assert resolve_profile(None, parse_spec(None)).name == "tiny-base"
    assert resolve_profile(None, parse_spec("llamacpp:/x/gemma-3-270m.gguf")).name == "reasoning"
    assert resolve_profile("chat", parse_spec("vllm:tiny")).clinical_answers
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"prompt_style": "chat", "think_open": "<reason>", "think_close": "</reason>",
                                "stop": ["<|eot|>"], "clinical_answers": False}))
    prof = resolve_profile(str(path), parse_spec("vllm:x"))
    assert (prof.name, prof.think_open, prof.stop, prof.clinical_answers) == ("mine", "<reason>", ("<|eot|>",), False)
    path.write_text(json.dumps({"prompt_style": "chat", "temprature": 1}))
    with pytest.raises(ConfigError, match="unknown model profile key.*temprature"):
        resolve_profile(str(path), parse_spec("vllm:x"))
    with pytest.raises(ConfigError):
        resolve_profile("no-such-profile", parse_spec("vllm:x"))


def test_profile_and_config_validation():
    with pytest.raises(ConfigError):
        ModelProfile(prompt_style="poem")
    with pytest.raises(ConfigError):
        ModelProfile(think_open="<t>", think_close=None)
    with pytest.raises(ConfigError):
        LLMConfig(endpoint="responses")
    with pytest.raises(ConfigError):
        GenerationParams(max_tokens=0)
    with pytest.raises(ConfigError):
        GenerationParams(stop="x")  # a bare string is a common mistake
    assert not MODEL_PROFILES["tiny-base"].clinical_answers


def test_load_llm_rejects_unknown_options_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown LLM option"):
        load_llm(None, n_thread=2)
    from medrag.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="not found"):
        load_llm(f"llamacpp:{tmp_path / 'missing.gguf'}")


def test_vllm_missing_is_a_dependency_error():
    # vllm is not installable here; when it is absent the error names the extra to install
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(DependencyMissingError, match=r"medrag\[vllm\]"):
            load_llm("vllm:some/model")
    else:  # pragma: no cover
        pytest.skip("vllm is installed")


def test_prompt_helpers():
    with pytest.raises(ConfigError):
        check_prompts("not a list")
    with pytest.raises(ConfigError):
        check_prompts([[{"role": "robot", "content": "x"}]])
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
            {"role": "assistant", "content": "partial"}]
    assert render_plain(msgs) == "S\n\nUser: U\n\nAssistant: partial"
    assert fold_system(msgs[:2]) == [{"role": "user", "content": "S\n\nU"}]
    assert merge_stops(["a", "b"], ["b", "c"]) == ["a", "b", "c"]
    assert apply_stops("abc</search>def", ["</search>", "zz"]) == ("abc", True)
    assert apply_stops("abc", ["x"]) == ("abc", False)


def test_import_llm_and_reason_load_no_runtime():
    code = ("import sys, medrag.llm, medrag.reason, medrag.reason.cli; "
            "print([m for m in ('llama_cpp', 'vllm', 'torch', 'faiss', 'openai') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
