"""OpenAI-compatible HTTP backend (``vllm serve``, llama.cpp's server, TGI, hosted APIs) over httpx.

* ``/v1/chat/completions`` for chat profiles, ``/v1/completions`` for completion profiles
  (``LLMConfig.endpoint`` forces one). A trailing assistant message is continued by sending
  ``continue_final_message=true, add_generation_prompt=false`` (vLLM's server understands these).
* connect/read timeouts; retries with exponential backoff (jittered, ``Retry-After`` honoured) on HTTP 429,
  5xx, timeouts and connection errors; other 4xx and malformed bodies fail at once with an LLMError.
* a batch runs with at most ``LLMConfig.concurrency`` requests in flight (a thread pool over one pooled
  ``httpx.Client``).
* the API key is read from the environment variable named by ``LLMConfig.api_key_env`` (no key, no header).
* a server-side reasoning parser's ``reasoning_content`` is put back inside the profile's think tags, so the
  thinking lands in the trace like any other reasoning model's; a block cut for length stays open (so budget
  forcing sees it), and when an assistant message is continued the reasoning continues its open block.
* ``finish_reason`` and ``usage`` are surfaced for plain and streamed requests alike.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..config import LLMConfig, ModelProfile
from ..errors import BackendUnavailableError, ConfigError, ContextOverflowError, LLMError
from .base import (
    BaseLLM,
    Generation,
    GenerationParams,
    Prompt,
    apply_stops,
    fold_system,
    render_plain,
    split_continuation,
)
from .thinking import ends_in_think

__all__ = ["OpenAILLM", "backoff_delay"]

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def backoff_delay(attempt: int, base: float, cap: float, retry_after: str | None = None,
                  rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``Retry-After`` if given, else jittered 2^n."""
    if retry_after:
        try:
            return min(cap, max(0.0, float(retry_after)))
        except ValueError:
            pass
    return min(cap, base * (2**attempt)) * (0.5 + 0.5 * rng())


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: str | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable


@dataclass
class _StreamState:
    """What a stream has told so far: reasoning and content pieces, finish reason, usage."""

    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)

    def usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)


class OpenAILLM(BaseLLM):
    """A model behind an OpenAI-compatible endpoint; see the module docstring for the HTTP behaviour."""

    def __init__(self, base_url: str, model: str | None, profile: ModelProfile,
                 config: LLMConfig | None = None, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config or LLMConfig()
        self.profile = profile
        self.base_url = base_url.rstrip("/")
        self._sleep = sleep
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(self.config.read_timeout, connect=self.config.connect_timeout)
        limits = httpx.Limits(max_connections=self.config.concurrency,
                              max_keepalive_connections=self.config.concurrency)
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, limits=limits,
                                    transport=transport)
        self.model = model or self._discover_model()
        self.name = f"openai:{self.base_url}#{self.model}"

    # ------------------------------------------------------------------------------------------ requests

    def _discover_model(self) -> str:
        data = self._request("GET", "/models", None)
        raw = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)] if isinstance(data, dict) else []
        ids: list[str] = [i for i in raw if isinstance(i, str)]
        if len(ids) != 1:
            raise ConfigError(
                f"{self.base_url} serves {len(ids)} models ({', '.join(ids) or 'none listed'}); "
                "name one: openai:URL#model"
            )
        return ids[0]

    def _request(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._attempt(method, path, payload)
            except _Retryable as exc:
                if attempt + 1 >= attempts:
                    cls = BackendUnavailableError if exc.unreachable else LLMError
                    raise cls(f"{self.base_url}{path}: {exc} (gave up after {attempts} attempts)") from None
                delay = backoff_delay(attempt, self.config.backoff_base, self.config.backoff_max, exc.retry_after)
                log.warning("%s%s: %s; retry %d/%d in %.1fs", self.base_url, path, exc, attempt + 1,
                            attempts - 1, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        try:
            resp = self._client.request(method, path, json=payload)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot connect: {exc}", unreachable=True) from exc
        if resp.status_code in _RETRY_STATUS:
            raise _Retryable(f"HTTP {resp.status_code}", resp.headers.get("retry-after"))
        if resp.status_code >= 400:
            overflow = context_overflow(resp.status_code, resp.text)
            if overflow is not None:
                raise ContextOverflowError(f"{self.base_url}{path}: {resp.text[:200]!r}", tokens=overflow[0],
                                           limit=overflow[1])
            hint = f" (is ${self.config.api_key_env} set?)" if resp.status_code in (401, 403) else ""
            raise LLMError(f"{self.base_url}{path}: HTTP {resp.status_code}{hint}: {resp.text[:200]!r}")
        try:
            return resp.json()
        except ValueError:
            raise LLMError(
                f"{self.base_url}{path} returned a body that is not JSON: {resp.text[:120]!r}"
            ) from None

    # ------------------------------------------------------------------------------------------ payloads

    def endpoint(self) -> str:
        if self.config.endpoint != "auto":
            return self.config.endpoint
        return "chat" if self.profile.prompt_style == "chat" else "completions"

    def payload(self, prompt: Prompt, params: GenerationParams, *, stream: bool = False) -> tuple[str, dict]:
        """(path, JSON body) for one prompt."""
        body: dict[str, Any] = {
            "model": self.model, "max_tokens": params.max_tokens, "temperature": params.temperature,
            "top_p": params.top_p, "stream": stream,
        }
        stops = self.stops(params)
        if stops:
            body["stop"] = stops[:4]  # the OpenAI API accepts at most 4 stop strings
        seed = params.seed if params.seed is not None else self.config.seed
        body["seed"] = seed
        if self.endpoint() == "chat":
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            head, cont = split_continuation(messages)
            if not self.profile.system_role:
                head = fold_system(head)
            if cont is not None:
                head.append({"role": "assistant", "content": cont})
                body.update(continue_final_message=True, add_generation_prompt=False)
            body["messages"] = head
            return "/chat/completions", body
        if not isinstance(prompt, str):
            if self.profile.prompt_style == "chat":
                raise ConfigError("chat prompts need the chat endpoint (LLMConfig.endpoint='chat' or 'auto')")
            prompt = render_plain(prompt)
        body["prompt"] = prompt
        return "/completions", body

    def _continues_thinking(self, prompt: Prompt) -> bool | None:
        """For a continued assistant message: whether it ends inside a think block (None: not a continuation)."""
        if isinstance(prompt, str):
            return None
        _, cont = split_continuation(prompt)
        if cont is None:
            return None
        p = self.profile
        return ends_in_think(cont, p.think_open, p.think_close, opened=p.think_prefill)

    def _join(self, reasoning: str, content: str, finished: bool, in_think: bool | None) -> str:
        """Server-side reasoning put back inside the profile's think tags. A block the model did not finish
        (cut for length) stays open. When an assistant message is continued, reasoning continues its open
        block (no second open tag); after a closed block, reasoning with no content and a normal finish is the
        answer itself (a parser that assumes every output starts in thinking labels untagged text so)."""
        p = self.profile
        if not reasoning or not (p.think_open and p.think_close):
            return reasoning + content
        if in_think is False and not content and finished:
            return reasoning
        head = "" if in_think else p.think_open
        close = p.think_close if (content or finished) else ""
        return f"{head}{reasoning}{close}{content}"

    def _text(self, choice: dict[str, Any], chat: bool, in_think: bool | None = None) -> str:
        if not chat:
            text = choice.get("text")
            if not isinstance(text, str):
                raise LLMError(f"{self.base_url}: completion choice has no text: {str(choice)[:120]!r}")
            return text
        msg = choice.get("message") or choice.get("delta") or {}
        content = msg.get("content") or ""
        if not isinstance(content, str):
            raise LLMError(f"{self.base_url}: chat choice has no string content: {str(choice)[:120]!r}")
        thinking = str(msg.get("reasoning_content") or msg.get("reasoning") or "")
        finished = str(choice.get("finish_reason") or "stop") != "length"
        return self._join(thinking, content, finished, in_think)

    # ---------------------------------------------------------------------------------------- generation

    def _one(self, prompt: Prompt, params: GenerationParams) -> Generation:
        t0 = time.perf_counter()
        path, body = self.payload(prompt, params)
        data = self._request("POST", path, body)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LLMError(f"{self.base_url}{path}: response is not an OpenAI completion: {str(data)[:160]!r}")
        text = self._text(choices[0], path.startswith("/chat"), self._continues_thinking(prompt))
        text, _ = apply_stops(text, self.stops(params))  # the API takes 4 stop strings; cut at the rest here
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return Generation(
            text=text, finish_reason=str(choices[0].get("finish_reason") or "stop"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0), seconds=time.perf_counter() - t0,
        )

    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Generation]:
        workers = min(self.config.concurrency, len(prompts))
        if workers <= 1:
            return [self._one(p, params) for p in prompts]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medrag-openai") as pool:
            return list(pool.map(lambda p: self._one(p, params), prompts))

    def stream(self, prompt: Prompt, params: GenerationParams | None = None) -> Iterator[str]:
        """Server-sent events (``stream=true``): the text pieces as they arrive."""
        pieces: list[str] = []
        gen = self.stream_generate(prompt, params, pieces.append)
        del gen
        yield from pieces

    def stream_generate(self, prompt: Prompt, params: GenerationParams | None,
                        on_text: Callable[[str], None]) -> Generation:
        """Server-sent events; pieces go to ``on_text`` as they arrive (for display). The returned text is
        assembled like a non-streamed reply's; finish_reason and usage come from the stream
        (``stream_options.include_usage``)."""
        params = params or GenerationParams()
        t0 = time.perf_counter()
        path, body = self.payload(prompt, params, stream=True)
        body["stream_options"] = {"include_usage": True}
        chat = path.startswith("/chat")
        state = _StreamState()
        try:
            with self._client.stream("POST", path, json=body) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise LLMError(f"{self.base_url}{path}: HTTP {resp.status_code}: {resp.text[:200]!r}")
                self._sse(resp, chat, state, on_text)
        except httpx.TimeoutException as exc:
            raise LLMError(f"{self.base_url}{path}: stream timed out") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailableError(f"{self.base_url}{path}: cannot connect: {exc}") from exc
        reasoning, content = "".join(state.reasoning), "".join(state.content)
        text = (self._join(reasoning, content, state.finish_reason != "length", self._continues_thinking(prompt))
                if chat else content)
        text, _ = apply_stops(text, self.stops(params))
        return Generation(text=text, finish_reason=state.finish_reason, prompt_tokens=state.prompt_tokens,
                          completion_tokens=state.completion_tokens, seconds=time.perf_counter() - t0)

    def _sse(self, resp: httpx.Response, chat: bool, state: _StreamState, on_text: Callable[[str], None]) -> None:
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                event = json.loads(data)
            except ValueError:
                raise LLMError(f"{self.base_url}: malformed stream event {data[:120]!r}") from None
            if not isinstance(event, dict):
                continue
            state.usage(event.get("usage"))
            choices = event.get("choices")
            if not choices or not isinstance(choices[0], dict):
                continue
            choice = choices[0]
            if choice.get("finish_reason"):
                state.finish_reason = str(choice["finish_reason"])
            if not chat:
                piece = str(choice.get("text") or "")
                state.content.append(piece)
                if piece:
                    on_text(piece)
                continue
            delta = choice.get("delta") or {}
            reasoning = str(delta.get("reasoning_content") or delta.get("reasoning") or "")
            content = str(delta.get("content") or "")
            tags = self.profile.think_open and self.profile.think_close
            if reasoning:
                head = self.profile.think_open if tags and not state.reasoning else ""
                state.reasoning.append(reasoning)
                on_text(f"{head}{reasoning}")
            if content:
                head = self.profile.think_close if tags and state.reasoning and not state.content else ""
                state.content.append(content)
                on_text(f"{head}{content}")

    def close(self) -> None:
        self._client.close()


_CONTEXT_LIMIT = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_REQUESTED = re.compile(r"(?:you requested|requested|resulted in) (\d+) tokens", re.IGNORECASE)


def context_overflow(status: int, body: str) -> tuple[int | None, int | None] | None:
    """``(tokens requested, context limit)`` when an OpenAI-compatible server refused a request for
    exceeding the model's context (vLLM, llama.cpp server and OpenAI all say "maximum context length"/
    "context"); None for any other error."""
    text = body[:2000]
    if status not in (400, 413, 422) or not re.search(r"context (length|window|size)|n_ctx", text, re.IGNORECASE):
        return None
    limit, requested = _CONTEXT_LIMIT.search(text), _REQUESTED.search(text)
    return (int(requested.group(1)) if requested else None, int(limit.group(1)) if limit else None)
