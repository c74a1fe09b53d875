"""Backend spec strings and model profiles.

::

    None / "default"                          packaged Gemma 3 270M GGUF via transformers (profile tiny-base)
    "transformers:/path/model.gguf"           a GGUF of an architecture transformers supports (torch, CPU)
    "llamacpp:/path/model.gguf"               any GGUF via llama-cpp-python (CPU; extra ``llamacpp``)
    "openai:http://127.0.0.1:8000/v1#model"   any OpenAI-compatible server (vllm serve, llama.cpp server, …);
                                              without "#model" the server's only model is used
    "vllm:org/model"                          in-process vLLM (GPU), a hub id or a local folder

A model named by a spec gets the ``reasoning`` profile unless another is given (``profile=`` /
``--profile``): a name, a JSON file holding a :class:`~medrag.config.ModelProfile`, or a ModelProfile.
The packaged default gets ``tiny-base`` because it is the default — never because of its file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..config import LLM_BACKENDS, MODEL_PROFILES, ModelProfile, load_profile_file
from ..errors import ConfigError

__all__ = ["LLMSpec", "parse_spec", "resolve_profile", "DEFAULT_SPEC", "DEFAULT_PROFILE", "SPEC_HELP"]

DEFAULT_SPEC = "default"
DEFAULT_BACKEND = "transformers"  # the packaged GGUF runs from wheels; see medrag.llm.transformers_gguf
DEFAULT_PROFILE = "tiny-base"
NAMED_MODEL_PROFILE = "reasoning"

SPEC_HELP = (
    "LLM spec: 'default' (offline Gemma 3 270M, evidence only), 'llamacpp:/path/model.gguf', "
    "'transformers:/path/model.gguf', "
    "'openai:http://host:port/v1#model', or 'vllm:org/model'"
)


@dataclass(frozen=True)
class LLMSpec:
    """A parsed spec: which backend, which model, and (openai) which server."""

    backend: str
    model: str | None  # GGUF path, served model name, or vLLM model id; None = packaged default / server's
    base_url: str | None = None
    is_default: bool = False

    @property
    def default_profile(self) -> str:
        return DEFAULT_PROFILE if self.is_default else NAMED_MODEL_PROFILE

    def __str__(self) -> str:
        if self.is_default:
            return DEFAULT_SPEC
        if self.backend == "openai":
            return f"openai:{self.base_url}" + (f"#{self.model}" if self.model else "")
        return f"{self.backend}:{self.model}"


def parse_spec(spec: str | None) -> LLMSpec:
    """Parse a spec string; ConfigError with the accepted forms when it is malformed."""
    if spec is None or spec.strip() in ("", DEFAULT_SPEC):
        return LLMSpec(DEFAULT_BACKEND, None, is_default=True)
    backend, sep, rest = spec.strip().partition(":")
    if not sep or backend not in LLM_BACKENDS or not rest.strip():
        raise ConfigError(f"bad --llm spec {spec!r}; expected {SPEC_HELP}")
    rest = rest.strip()
    if backend == "openai":
        url, _, model = rest.partition("#")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"bad openai spec {spec!r}: need an http(s) base URL, e.g. openai:http://127.0.0.1:8000/v1#model")
        return LLMSpec("openai", model.strip() or None, base_url=url.rstrip("/"))
    return LLMSpec(backend, rest)


def resolve_profile(profile: str | ModelProfile | None, spec: LLMSpec) -> ModelProfile:
    """A ModelProfile from a name, a JSON file path, an instance, or the spec's default."""
    if isinstance(profile, ModelProfile):
        return profile
    name = profile or spec.default_profile
    if name in MODEL_PROFILES:
        return MODEL_PROFILES[name]
    path = Path(name)
    if path.suffix == ".json":
        if not path.is_file():
            raise ConfigError(f"model profile file {path} not found")
        return load_profile_file(path)
    raise ConfigError(
        f"unknown model profile {name!r}; use one of {', '.join(MODEL_PROFILES)} or a .json profile file"
    )
