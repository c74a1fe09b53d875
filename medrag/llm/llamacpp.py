"""llama-cpp-python backend (CPU): GGUF models, completion or templated chat prompts, streaming.

One ``llama_cpp.Llama`` holds one context and generates one sequence at a time, so concurrency comes from a
pool of ``parallel`` instances sharing the memory-mapped weights (each with its own KV cache);
``generate`` spreads a batch over the pool with threads (llama.cpp releases the GIL while decoding). The CPU
budget ``n_threads`` is shared: a batch of w prompts runs w instances with ``n_threads // w`` threads each
(``llama_set_n_threads``), a single prompt runs on one instance with all of them. Chat prompts are rendered locally with the profile's Jinja chat template or the GGUF's own
(``tokenizer.chat_template``), so a trailing assistant message can be continued.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Any

from .._optional import require
from ..config import LLMConfig, ModelProfile
from ..errors import (
    BackendUnavailableError,
    ConfigError,
    ContextOverflowError,
    LLMError,
)
from .base import BaseLLM, Generation, GenerationParams, Prompt, render_prompt
from .packaged import packaged_model_path

__all__ = ["LlamaCppLLM", "packaged_model_path"]

log = logging.getLogger(__name__)


def _quiet() -> Any:
    """Silence llama.cpp's C-level chatter on stdout/stderr while a model loads (not with MEDRAG_DEBUG)."""
    if os.environ.get("MEDRAG_DEBUG"):
        return nullcontext()
    try:
        from llama_cpp._utils import suppress_stdout_stderr
    except ImportError:  # pragma: no cover - private helper moved
        return nullcontext()
    return suppress_stdout_stderr(disable=False)


def _import_llama() -> Any:
    return require("llama_cpp", "llama-cpp-python", "llamacpp", "the llamacpp backend")


class LlamaCppLLM(BaseLLM):
    """A GGUF model run by llama-cpp-python; see the module docstring for concurrency and chat handling."""

    def __init__(self, model_path: str | os.PathLike[str], profile: ModelProfile,
                 config: LLMConfig | None = None, *, name: str | None = None) -> None:
        self._init_local_file(model_path, profile, config, name, "llamacpp")
        llama_cpp = _import_llama()
        cores = os.cpu_count() or 1
        self.n_threads = self.config.n_threads or cores
        self.parallel = self.config.parallel
        self._llama_cpp = llama_cpp
        self._pool: queue.Queue[Any] = queue.Queue()
        self._instances = [self._load(llama_cpp) for _ in range(self.parallel)]
        self._threads = {id(inst): self.n_threads for inst in self._instances}
        for inst in self._instances:
            self._pool.put(inst)
        self._template_lock = threading.Lock()
        self._formatter: Any = None

    def _load(self, llama_cpp: Any) -> Any:
        try:
            with _quiet():
                return llama_cpp.Llama(
                    model_path=self.model_path, n_ctx=self.config.n_ctx, n_threads=self.n_threads,
                    n_threads_batch=self.n_threads, n_batch=self.config.n_batch, seed=self.config.seed,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendUnavailableError(f"llama.cpp could not load {self.model_path}: {exc}") from exc

    # ------------------------------------------------------------------------------------------ prompts

    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees for ``prompt`` (a chat list goes through the chat template)."""
        return render_prompt(prompt, self.profile, self._apply_template)

    def _apply_template(self, turns: list[dict[str, str]]) -> tuple[str, str | None]:
        formatter = self._chat_formatter()
        return formatter(messages=turns).prompt, formatter.bos_token

    def _chat_formatter(self) -> Any:
        with self._template_lock:
            if self._formatter is None:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                llama = self._instances[0]
                template = self.profile.chat_template or llama.metadata.get("tokenizer.chat_template")
                if not template:
                    raise ConfigError(
                        f"{self.model_path} has no chat template and profile {self.profile.name!r} sets none: "
                        "use a completion profile (--profile tiny-base) or give chat_template in a profile file"
                    )
                bos = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "replace")
                eos = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "replace")
                self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
            return self._formatter

    def _tokens(self, llama: Any, prompt: Prompt, max_tokens: int) -> list[int]:
        text = self.render(prompt)
        tokens = llama.tokenize(text.encode("utf-8"), add_bos=True, special=not isinstance(prompt, str))
        if len(tokens) + max_tokens > self.config.n_ctx:
            raise ContextOverflowError(
                f"prompt of {len(tokens)} tokens + max_tokens {max_tokens} exceeds n_ctx {self.config.n_ctx}; "
                "raise n_ctx or shorten the evidence (LoopConfig.evidence_chars / k)",
                tokens=len(tokens) + max_tokens, limit=self.config.n_ctx,
            )
        return tokens

    # --------------------------------------------------------------------------------------- generation

    @contextmanager
    def _instance(self, threads: int | None = None) -> Iterator[Any]:
        llama = self._pool.get()
        try:
            self._set_threads(llama, threads or self.n_threads)
            yield llama
        finally:
            self._pool.put(llama)

    def _set_threads(self, llama: Any, n: int) -> None:
        """Give an instance ``n`` decode threads (no-op if llama-cpp-python hides its context)."""
        ctx = getattr(getattr(llama, "_ctx", None), "ctx", None)
        if ctx is None or self._threads.get(id(llama)) == n:
            return
        self._llama_cpp.llama_set_n_threads(ctx, n, n)
        self._threads[id(llama)] = n

    def _kwargs(self, params: GenerationParams) -> dict[str, Any]:
        return {
            "max_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p,
            "stop": self.stops(params), "seed": params.seed if params.seed is not None else self.config.seed,
        }

    def _one(self, prompt: Prompt, params: GenerationParams, threads: int | None = None) -> Generation:
        t0 = time.perf_counter()
        with self._instance(threads) as llama:
            tokens = self._tokens(llama, prompt, params.max_tokens)
            try:
                out = llama.create_completion(tokens, **self._kwargs(params))
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"llama.cpp generation failed: {exc}") from exc
        choice, usage = out["choices"][0], out.get("usage") or {}
        return Generation(
            text=choice["text"], finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
            completion_tokens=int(usage.get("completion_tokens", 0)), seconds=time.perf_counter() - t0,
        )

    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Generation]:
        workers = min(self.parallel, len(prompts))
        if workers <= 1:
            return [self._one(p, params) for p in prompts]
        each = max(1, self.n_threads // workers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medrag-llamacpp") as pool:
            return list(pool.map(lambda p: self._one(p, params, each), prompts))

    def stream(self, prompt: Prompt, params: GenerationParams | None = None) -> Iterator[str]:
        params = params or GenerationParams()
        with self._instance() as llama:
            tokens = self._tokens(llama, prompt, params.max_tokens)
            try:
                for chunk in llama.create_completion(tokens, stream=True, **self._kwargs(params)):
                    piece = chunk["choices"][0].get("text") or ""
                    if piece:
                        yield piece
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"llama.cpp generation failed: {exc}") from exc

    def stream_generate(self, prompt: Prompt, params: GenerationParams | None,
                        on_text: Callable[[str], None]) -> Generation:
        """Streamed generation; the last chunk's finish_reason is kept (``length`` when max_tokens ran out)."""
        params = params or GenerationParams()
        t0 = time.perf_counter()
        pieces: list[str] = []
        finish = "stop"
        with self._instance() as llama:
            tokens = self._tokens(llama, prompt, params.max_tokens)
            try:
                for chunk in llama.create_completion(tokens, stream=True, **self._kwargs(params)):
                    choice = chunk["choices"][0]
                    piece = choice.get("text") or ""
                    finish = choice.get("finish_reason") or finish
                    if piece:
                        pieces.append(piece)
                        on_text(piece)
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"llama.cpp generation failed: {exc}") from exc
            n_out = len(llama.tokenize("".join(pieces).encode("utf-8"), add_bos=False, special=True))
        return Generation(text="".join(pieces), finish_reason=str(finish), prompt_tokens=len(tokens),
                          completion_tokens=n_out, seconds=time.perf_counter() - t0)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._instance() as llama:
            return [len(llama.tokenize(t.encode("utf-8"), add_bos=False)) for t in texts]

    def close(self) -> None:
        while self._instances:
            inst = self._instances.pop()
            close = getattr(inst, "close", None)
            if close is not None:
                close()
