"""Language-model backends behind one protocol.

>>> from medrag.llm import load_llm, GenerationParams
>>> llm = load_llm()                                   # offline: packaged Gemma 3 270M via transformers
>>> [g.text for g in llm.generate(["Question: ...\\nAnswer:"], GenerationParams(max_tokens=32))]

``load_llm(spec, profile=None, config=None, **overrides)``:

* ``spec``: ``None``/``"default"``, ``"transformers:/path/model.gguf"``, ``"llamacpp:/path/model.gguf"``,
  ``"openai:http://127.0.0.1:8000/v1#model"``, ``"vllm:org/model"`` (see :mod:`medrag.llm.spec`).
* ``profile``: a :class:`~medrag.config.ModelProfile`, a name from ``MODEL_PROFILES`` or a ``.json`` file;
  default ``tiny-base`` for the packaged model, ``reasoning`` for a model you name.
* ``overrides``: fields of :class:`~medrag.config.LLMConfig` (``n_threads=2``, ``parallel=2``,
  ``read_timeout=30``, ``concurrency=4``, ``api_key_env="MY_KEY"``, ``tensor_parallel_size=2`` …).

The returned object implements :class:`LLM`: ``generate(prompts, params) -> list[Generation]`` (a batch in
one call: a round's prompts together), ``stream(prompt, params)`` and ``close()``. Backends are imported
only when used, so ``import medrag.llm`` loads no model runtime.

The offline default is a 270M *base* model. It can phrase search queries but cannot answer clinical
questions; ``medrag ask`` therefore shows the retrieved, cited evidence for it. Real answers need an 8B
medical reasoning model served by vLLM (``vllm:…``) or any OpenAI-compatible server (``openai:…``).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from ..config import LLMConfig, ModelProfile
from ..errors import ConfigError
from .base import LLM, BaseLLM, ChatMessage, Generation, GenerationParams, Prompt
from .llamacpp import LlamaCppLLM
from .packaged import PACKAGED_MODEL_LABEL, packaged_model_path
from .spec import DEFAULT_SPEC, SPEC_HELP, LLMSpec, parse_spec, resolve_profile
from .transformers_gguf import TransformersLLM
from .vllm_backend import VLLMBackend

__all__ = [
    "LLM",
    "BaseLLM",
    "ChatMessage",
    "Prompt",
    "Generation",
    "GenerationParams",
    "LLMSpec",
    "LLMConfig",
    "ModelProfile",
    "parse_spec",
    "resolve_profile",
    "load_llm",
    "DEFAULT_SPEC",
    "SPEC_HELP",
]


def load_llm(spec: str | None = None, *, profile: str | ModelProfile | None = None,
             config: LLMConfig | None = None, **overrides: Any) -> LLM:
    """Create the backend a spec string names (see the module docstring). Raises ConfigError for a bad
    spec/option, DependencyMissingError for a missing optional package, BackendUnavailableError when the
    model or server cannot be used."""
    parsed = parse_spec(spec)
    cfg = _with_overrides(config or LLMConfig(), overrides)
    prof = resolve_profile(profile, parsed)
    if parsed.backend == "transformers":
        if parsed.is_default:
            return TransformersLLM(packaged_model_path(), prof, cfg,
                                   name=f"default ({PACKAGED_MODEL_LABEL}, transformers)")
        return TransformersLLM(parsed.model or "", prof, cfg)
    if parsed.backend == "llamacpp":
        return LlamaCppLLM(parsed.model or "", prof, cfg)
    if parsed.backend == "openai":
        from .openai_http import OpenAILLM  # deferred: httpx

        return OpenAILLM(parsed.base_url or "", parsed.model, prof, cfg)

    return VLLMBackend(parsed.model or "", prof, cfg)


def _with_overrides(cfg: LLMConfig, overrides: dict[str, Any]) -> LLMConfig:
    known = {f.name for f in fields(LLMConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown LLM option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return replace(cfg, **overrides) if overrides else cfg
