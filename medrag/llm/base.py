"""The LLM protocol every backend implements, its value types, and prompt rendering helpers.

A *prompt* is either a completion string or a chat message list (``[{"role": "user", "content": "…"}]``).
A chat list whose last message has role ``assistant`` asks the backend to *continue* that message (used by
the search-tag loop to resume generation after inserting evidence). ``LLM.generate`` takes a whole batch —
all of a round's prompts in one call — and returns one :class:`Generation` per prompt, in order.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..config import LLMConfig, ModelProfile
from ..errors import BackendUnavailableError, ConfigError, LLMError

__all__ = [
    "ChatMessage",
    "Prompt",
    "GenerationParams",
    "Generation",
    "LLM",
    "BaseLLM",
    "check_prompts",
    "is_chat",
    "merge_stops",
    "render_plain",
    "render_prompt",
    "apply_stops",
    "extend_prompt",
]

log = logging.getLogger(__name__)

ChatMessage = Mapping[str, str]
Prompt = str | Sequence[ChatMessage]

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for one ``generate`` call (applied to every prompt of the batch).

    ``stop`` strings end generation and are not part of the returned text; the model profile's own stop
    strings are added by the backend. ``temperature=0`` is greedy decoding.
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError("stop must be a sequence of non-empty strings")


@dataclass(frozen=True)
class Generation:
    """One completion: the text (stop string excluded), why it ended, token counts and seconds taken."""

    text: str
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    meta: tuple[tuple[str, str], ...] = field(default=())


@runtime_checkable
class LLM(Protocol):
    """What the reasoning loops need from a language model.

    ``generate(prompts, params) -> list[Generation]``: one result per prompt, same order; a backend that
    can batch (vLLM) or run requests concurrently (HTTP, a llama.cpp instance pool) does so across the batch.
    ``stream(prompt, params)`` yields text pieces of a single generation as they are produced.
    ``name`` identifies the model; ``profile`` says how to prompt it and whether to trust its answers.
    """

    name: str
    profile: ModelProfile

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams | None = None) -> list[Generation]: ...

    def stream(self, prompt: Prompt, params: GenerationParams | None = None) -> Iterator[str]: ...

    def stream_generate(self, prompt: Prompt, params: GenerationParams | None,
                        on_text: Callable[[str], None]) -> Generation: ...

    def close(self) -> None: ...


class BaseLLM:
    """Shared plumbing: argument checks, stop merging, a default ``stream`` and context-manager support."""

    name: str = ""
    profile: ModelProfile

    def _init_local_file(self, model_path: str | os.PathLike[str], profile: ModelProfile, config: LLMConfig | None,
                         name: str | None, scheme: str) -> None:
        """Common set-up of a backend that runs a local model file (``scheme:path`` is its default name)."""
        self.config = config or LLMConfig()
        self.profile = profile
        self.model_path = str(model_path)
        self.name = name or f"{scheme}:{self.model_path}"
        if not Path(self.model_path).is_file():
            raise BackendUnavailableError(f"GGUF model file not found: {self.model_path}")

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams | None = None) -> list[Generation]:
        batch = check_prompts(prompts)
        params = params or GenerationParams()
        if not batch:
            return []
        t0 = time.perf_counter()
        out = self._generate(batch, params)
        if len(out) != len(batch):
            raise LLMError(f"{self.name}: backend returned {len(out)} generations for {len(batch)} prompts")
        log.debug("%s: %d prompts in %.2fs", self.name, len(batch), time.perf_counter() - t0)
        return out

    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Generation]:
        raise NotImplementedError

    def stream(self, prompt: Prompt, params: GenerationParams | None = None) -> Iterator[str]:
        """Default: no incremental output — yields the whole generation once."""
        yield self.generate([prompt], params)[0].text

    def stream_generate(self, prompt: Prompt, params: GenerationParams | None,
                        on_text: Callable[[str], None]) -> Generation:
        """One generation whose text pieces go to ``on_text`` as they are produced; returns the whole
        Generation (finish_reason and token counts included). Default: no incremental output."""
        gen = self.generate([prompt], params)[0]
        if gen.text:
            on_text(gen.text)
        return gen

    def stops(self, params: GenerationParams) -> list[str]:
        return merge_stops(params.stop, self.profile.stop)

    def close(self) -> None:
        """Release model memory / connections (idempotent)."""

    def __enter__(self) -> BaseLLM:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, profile={self.profile.name!r})"


def is_chat(prompt: Prompt) -> bool:
    return not isinstance(prompt, str)


def check_prompts(prompts: Sequence[Prompt]) -> list[Prompt]:
    """Validate a batch: strings, or non-empty message lists with known roles and string content."""
    if isinstance(prompts, str):
        raise ConfigError("generate() takes a sequence of prompts; wrap a single prompt in a list")
    batch = list(prompts)
    for i, prompt in enumerate(batch):
        if isinstance(prompt, str):
            continue
        if not isinstance(prompt, Sequence) or not prompt:
            raise ConfigError(f"prompt {i} must be a string or a non-empty list of chat messages")
        for msg in prompt:
            if not isinstance(msg, Mapping) or msg.get("role") not in _ROLES or not isinstance(
                msg.get("content"), str
            ):
                raise ConfigError(
                    f"prompt {i}: each chat message needs role in {_ROLES} and string content, got {msg!r}"
                )
    return batch


def merge_stops(*groups: Sequence[str]) -> list[str]:
    """Stop strings of all groups, de-duplicated, order kept."""
    seen: dict[str, None] = {}
    for group in groups:
        for s in group:
            seen.setdefault(s, None)
    return list(seen)


def apply_stops(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string (for backends that may overrun); returns (text, stopped)."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def split_continuation(messages: Sequence[ChatMessage]) -> tuple[list[dict[str, str]], str | None]:
    """(messages before a trailing assistant message, that message's text) — or (all, None)."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    if msgs and msgs[-1]["role"] == "assistant":
        return msgs[:-1], msgs[-1]["content"]
    return msgs, None


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Merge system messages into the first user message (for templates without a system role)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system:
        if rest and rest[0]["role"] == "user":
            rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        else:
            rest.insert(0, {"role": "user", "content": system})
    return rest


def chat_turns(messages: Sequence[ChatMessage], profile: ModelProfile) -> tuple[list[dict[str, str]], str | None]:
    """The turns a chat template renders (system folded in when the profile's template has no system
    role) and the trailing assistant text to continue, if any."""
    head, cont = split_continuation(messages)
    return (head if profile.system_role else fold_system(head)), cont


def render_plain(messages: Sequence[ChatMessage]) -> str:
    """A chat list as a plain transcript for completion-only models (no template)."""
    head, cont = split_continuation(messages)
    parts = []
    for m in head:
        label = {"system": "", "user": "User: ", "assistant": "Assistant: "}[m["role"]]
        parts.append(f"{label}{m['content']}".strip())
    parts.append(f"Assistant: {cont}" if cont else "Assistant:")
    return "\n\n".join(parts)


def extend_prompt(prompt: Prompt, text: str) -> Prompt:
    """``prompt`` continued by ``text``: appended to a completion string or to a trailing assistant message
    (added when the chat list does not end with one)."""
    if isinstance(prompt, str):
        return prompt + text
    msgs = [dict(m) for m in prompt]
    if msgs and msgs[-1]["role"] == "assistant":
        msgs[-1]["content"] += text
    else:
        msgs.append({"role": "assistant", "content": text})
    return msgs


def render_prompt(prompt: Prompt, profile: ModelProfile,
                  template: Callable[[list[dict[str, str]]], tuple[str, str | None]]) -> str:
    """The exact text a local model sees: a string as is, a chat list as a plain transcript (completion
    profiles) or through ``template(turns) -> (text, bos)``; a leading BOS is dropped (tokenizing adds it) and
    a trailing assistant turn is continued."""
    if isinstance(prompt, str):
        return prompt
    if profile.prompt_style == "completion":
        return render_plain(prompt)
    head, cont = chat_turns(prompt, profile)
    text, bos = template(head)
    if bos and text.startswith(bos):
        text = text[len(bos):]
    return text + (cont or "")
