"""Transformers backend (CPU, wheels only): a GGUF model dequantised into a torch model by ``transformers``.

This is what the packaged default (Gemma 3 270M) runs on: ``transformers`` reads the GGUF with the
pure-Python ``gguf`` package, dequantises the weights to float32 and rebuilds the tokenizer, so nothing
is compiled at install time (llama-cpp-python has no Linux wheel on PyPI). Any GGUF whose architecture
transformers supports can be named with ``transformers:/path/model.gguf``; the llama.cpp backend
(``llamacpp:…``, extra ``llamacpp``) stays the faster choice for your own large GGUFs.

The conversion costs tens of seconds on 2 cores, so the converted model and tokenizer are stored once
(safetensors + tokenizer.json) under ``LLMConfig.cache_dir`` (default ``$MEDRAG_CACHE_DIR`` or
``~/.cache/medrag``), keyed by the GGUF's path, size and mtime and the transformers version; later loads
read them in seconds. One generation runs at a time (a lock); a batch runs its prompts one after another.
Greedy decoding at ``temperature=0``; stop strings end a generation and are cut from its text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._optional import require
from ..config import LLMConfig, ModelProfile, cache_root
from ..errors import BackendUnavailableError, ConfigError, ContextOverflowError, LLMError
from .base import BaseLLM, Generation, GenerationParams, Prompt, apply_stops, render_prompt

__all__ = ["TransformersLLM", "held_back"]

log = logging.getLogger(__name__)



def held_back(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """The part of a growing generation that is safe to show: cut at a stop string (True) or, while none
    has appeared, minus a trailing partial stop string or an unfinished UTF-8 character."""
    cut, stopped = apply_stops(text, stops)
    if stopped:
        return cut, True
    keep = 0
    for s in stops:
        for n in range(min(len(text), len(s) - 1), 0, -1):
            if text.endswith(s[:n]):
                keep = max(keep, n)
                break
    if text[len(text) - keep - 1:len(text) - keep] == "\ufffd":
        keep += 1
    return text[:len(text) - keep], False


@contextmanager
def _quiet() -> Iterator[None]:
    """No transformers progress bars or warnings while a model loads (shown with MEDRAG_DEBUG=1): the CLI's
    stdout/stderr stay clean for ``--json``."""
    from transformers.utils import logging as hf_logging

    if os.environ.get("MEDRAG_DEBUG"):
        yield
        return
    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


class _Streamer:
    """A transformers streamer (``put``/``end``) that passes the visible new text to ``on_text``."""

    def __init__(self, decode: Callable[[list[int]], str], stops: Sequence[str],
                 on_text: Callable[[str], None]) -> None:
        self._decode, self._stops, self._on_text = decode, list(stops), on_text
        self._ids: list[int] = []
        self._prompt_seen = False
        self._sent = 0

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() hands over the prompt first
            self._prompt_seen = True
            return
        self._ids.extend(int(t) for t in value.reshape(-1).tolist())
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        text = self._decode(self._ids)
        safe, stopped = held_back(text, self._stops)
        if final and not stopped:
            safe = apply_stops(text, self._stops)[0]
        if len(safe) > self._sent:
            self._on_text(safe[self._sent:])
            self._sent = len(safe)


class TransformersLLM(BaseLLM):
    """A GGUF model run by transformers + torch on the CPU; see the module docstring."""

    def __init__(self, model_path: str | os.PathLike[str], profile: ModelProfile,
                 config: LLMConfig | None = None, *, name: str | None = None) -> None:
        self._init_local_file(model_path, profile, config, name, "transformers")
        self._torch = require("torch", "torch", "llm", "the transformers backend")
        require("transformers", "transformers", "llm", "the transformers backend")
        require("gguf", "gguf", "llm", "reading GGUF files with transformers")
        if self.config.n_threads:
            self._torch.set_num_threads(self.config.n_threads)
        self._lock = threading.Lock()
        self._tok, self._model = self._load()
        eos = self._model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        self._eos = [int(e) for e in eos_ids if e is not None] or [int(self._tok.eos_token_id)]
        self._pad = int(self._tok.pad_token_id if self._tok.pad_token_id is not None else self._eos[0])

    # ------------------------------------------------------------------------------------------ loading

    def _cache_path(self) -> Path:
        import transformers

        src = Path(self.model_path).resolve()
        st = src.stat()
        key = hashlib.sha256(f"{src}|{st.st_size}|{st.st_mtime_ns}|{transformers.__version__}".encode()).hexdigest()
        root = Path(self.config.cache_dir) if self.config.cache_dir else cache_root()
        return root / "gguf-transformers" / f"{src.stem}-{key[:16]}"

    def _load(self) -> tuple[Any, Any]:
        with _quiet():
            return self._load_quietly()

    def _load_quietly(self) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cached = self._cache_path()
        try:
            if (cached / "config.json").is_file():
                tok = AutoTokenizer.from_pretrained(cached)
                model = AutoModelForCausalLM.from_pretrained(cached, dtype=self._torch.float32)
                return tok, model.eval()
            log.info("converting %s for transformers (once; cached in %s)", self.model_path, cached)
            src = Path(self.model_path)
            tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
            model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=self._torch.float32)
        except (ValueError, OSError, KeyError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BackendUnavailableError(f"transformers could not load {self.model_path}: {first}") from exc
        self._store(tok, model, cached)
        return tok, model.eval()

    @staticmethod
    def _store(tok: Any, model: Any, target: Path) -> None:
        """Save the converted model next to the others (atomically: a temp folder renamed into place)."""
        tmp: Path | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
            # the weights are dequantised already; transformers still marks a GGUF-loaded model unsavable
            model.hf_quantizer = None
            if getattr(model.config, "quantization_config", None) is not None:
                del model.config.quantization_config
            tok.save_pretrained(tmp)
            model.save_pretrained(tmp)
            tmp.rename(target)  # fails when another process stored it first: its copy is kept
            tmp = None
        except (OSError, ValueError) as exc:
            log.warning("could not cache the converted model in %s (%s); it will be converted again", target, exc)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------------------------------ prompts

    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees for ``prompt`` (a chat list goes through the chat template)."""
        return render_prompt(prompt, self.profile, self._apply_template)

    def _apply_template(self, turns: list[dict[str, str]]) -> tuple[str, str | None]:
        template = self.profile.chat_template or getattr(self._tok, "chat_template", None)
        if not template:
            raise ConfigError(
                f"{self.model_path} has no chat template and profile {self.profile.name!r} sets none: "
                "use a completion profile (--profile tiny-base) or give chat_template in a profile file"
            )
        text = self._tok.apply_chat_template(turns, chat_template=template, tokenize=False, add_generation_prompt=True)
        return text, self._tok.bos_token

    def _ids(self, prompt: Prompt, max_tokens: int) -> list[int]:
        ids = list(self._tok(self.render(prompt), add_special_tokens=True)["input_ids"])
        if len(ids) + max_tokens > self.config.n_ctx:
            raise ContextOverflowError(
                f"prompt of {len(ids)} tokens + max_tokens {max_tokens} exceeds n_ctx {self.config.n_ctx}; "
                "raise n_ctx or shorten the evidence (LoopConfig.evidence_chars / k)",
                tokens=len(ids) + max_tokens, limit=self.config.n_ctx,
            )
        return ids

    def _decode(self, ids: list[int]) -> str:
        return str(self._tok.decode([t for t in ids if t not in self._eos], skip_special_tokens=True))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self._tok(t, add_special_tokens=False)["input_ids"]) for t in texts]

    # --------------------------------------------------------------------------------------- generation

    def _gen_config(self, params: GenerationParams, stops: Sequence[str]) -> Any:
        from transformers import GenerationConfig

        sample = params.temperature > 0
        return GenerationConfig(
            max_new_tokens=params.max_tokens, do_sample=sample,
            temperature=params.temperature if sample else None, top_p=params.top_p if sample else None,
            top_k=None, eos_token_id=self._eos, pad_token_id=self._pad,
        )

    def _stop_criteria(self, stops: Sequence[str], n_prompt: int) -> Any:
        """Stop once a stop string appears in the new text. (transformers' own ``stop_strings`` precomputes
        a table over the whole vocabulary on every call: seconds for Gemma's 262k tokens.)"""
        from transformers import StoppingCriteria, StoppingCriteriaList

        decode, torch = self._decode, self._torch

        class _StopOnText(StoppingCriteria):  # type: ignore[misc]
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                text = decode([int(t) for t in input_ids[0, n_prompt:].tolist()])
                return torch.full((input_ids.shape[0],), any(s in text for s in stops), dtype=torch.bool)

        return StoppingCriteriaList([_StopOnText()] if stops else [])

    def _run(self, prompt: Prompt, params: GenerationParams, on_text: Callable[[str], None] | None) -> Generation:
        t0 = time.perf_counter()
        stops = self.stops(params)
        ids = self._ids(prompt, params.max_tokens)
        torch = self._torch
        streamer = _Streamer(self._decode, stops, on_text) if on_text is not None else None
        with self._lock, torch.inference_mode():
            torch.manual_seed(params.seed if params.seed is not None else self.config.seed)
            try:
                out = self._model.generate(
                    input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    generation_config=self._gen_config(params, stops),
                    stopping_criteria=self._stop_criteria(stops, len(ids)), streamer=streamer,
                )
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"transformers generation failed: {exc}") from exc
        new = [int(t) for t in out[0, len(ids):].tolist()]
        ended = bool(new) and new[-1] in self._eos
        text, stopped = apply_stops(self._decode(new), stops)
        finish = "stop" if stopped or ended or len(new) < params.max_tokens else "length"
        return Generation(text=text, finish_reason=finish, prompt_tokens=len(ids),
                          completion_tokens=len(new), seconds=time.perf_counter() - t0)

    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Generation]:
        return [self._run(p, params, None) for p in prompts]

    def stream_generate(self, prompt: Prompt, params: GenerationParams | None,
                        on_text: Callable[[str], None]) -> Generation:
        """Streamed generation: visible text pieces go to ``on_text``; the whole Generation is returned."""
        return self._run(prompt, params or GenerationParams(), on_text)

    def stream(self, prompt: Prompt, params: GenerationParams | None = None) -> Iterator[str]:
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()

        def work() -> None:
            try:
                self._run(prompt, params or GenerationParams(), lambda t: pieces.put(("text", t)))
                pieces.put(("end", None))
            except Exception as exc:  # noqa: BLE001 - handed to the consuming thread and re-raised there
                pieces.put(("error", exc))

        threading.Thread(target=work, name="medrag-transformers-stream", daemon=True).start()
        while True:
            kind, value = pieces.get()
            if kind == "text":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def close(self) -> None:
        self._model = None
