"""In-process vLLM backend (GPU): a whole batch in one ``vllm.LLM.generate`` call.

Install with ``pip install 'medrag[vllm]'`` on a CUDA machine. ``load_llm("vllm:zou-lab/BioMed-R1-8B")``
creates ``vllm.LLM(model, tensor_parallel_size, gpu_memory_utilization, max_model_len, dtype, seed)``
(``max_model_len``: the option, else the profile's). Each output's ``finish_reason`` (``length`` when
``max_tokens`` ran out) is passed on, so thinking budgets can force an answer.
Completion prompts go to vLLM as text; chat prompts are rendered with the HF tokenizer's chat template (or the
profile's ``chat_template``) and passed as token ids (``{"prompt_token_ids": …}``) so no second BOS is
added; a trailing assistant message is appended to the rendered prompt and continued. One
``SamplingParams`` per call (max_tokens, temperature, top_p, stop, seed). vLLM has no incremental output in
offline mode: ``stream`` yields the finished text once.

Note: this backend was exercised here only with an injected stand-in for the ``vllm`` module (plumbing:
prompt rendering, one generate call per batch, parameter mapping, result order); it was not run on a GPU.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .._optional import require
from ..config import LLMConfig, ModelProfile
from ..errors import BackendUnavailableError, LLMError
from .base import BaseLLM, Generation, GenerationParams, Prompt, chat_turns, render_plain

__all__ = ["VLLMBackend"]

log = logging.getLogger(__name__)


def _import_vllm() -> Any:
    return require("vllm", "vllm", "vllm", "the vllm backend (needs a CUDA GPU)")


class VLLMBackend(BaseLLM):
    """``vllm.LLM`` in this process; ``vllm_module`` lets tests inject a stand-in module."""

    def __init__(self, model: str, profile: ModelProfile, config: LLMConfig | None = None, *,
                 vllm_module: Any = None) -> None:
        self.config = config or LLMConfig()
        self.profile = profile
        self.model = model
        self.name = f"vllm:{model}"
        self._vllm = vllm_module if vllm_module is not None else _import_vllm()
        kwargs: dict[str, Any] = {
            "model": model, "tensor_parallel_size": self.config.tensor_parallel_size,
            "gpu_memory_utilization": self.config.gpu_memory_utilization, "dtype": self.config.dtype,
            "seed": self.config.seed,
        }
        max_len = self.config.max_model_len or profile.max_model_len  # an explicit option wins
        if max_len:
            kwargs["max_model_len"] = max_len
        try:
            self._llm = self._vllm.LLM(**kwargs)
        except (RuntimeError, ValueError, OSError) as exc:
            raise BackendUnavailableError(f"vLLM could not start {model}: {exc}") from exc
        self._tokenizer: Any = None

    def _tok(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = self._llm.get_tokenizer()
        return self._tokenizer

    def to_vllm_prompt(self, prompt: Prompt) -> str | dict[str, Any]:
        """Text for completion prompts; ``{"prompt_token_ids": …}`` for templated chat prompts."""
        if isinstance(prompt, str):
            return prompt
        if self.profile.prompt_style == "completion":
            return render_plain(prompt)
        head, cont = chat_turns(prompt, self.profile)
        tok = self._tok()
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
        if self.profile.chat_template:
            kwargs["chat_template"] = self.profile.chat_template
        text = tok.apply_chat_template(head, **kwargs) + (cont or "")
        return {"prompt_token_ids": list(tok.encode(text, add_special_tokens=False))}

    def sampling_params(self, params: GenerationParams) -> Any:
        return self._vllm.SamplingParams(
            max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
            stop=self.stops(params) or None, seed=params.seed if params.seed is not None else self.config.seed,
        )

    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Generation]:
        t0 = time.perf_counter()
        inputs = [self.to_vllm_prompt(p) for p in prompts]
        try:
            outputs = self._llm.generate(inputs, self.sampling_params(params), use_tqdm=False)
        except (RuntimeError, ValueError) as exc:
            raise LLMError(f"vLLM generation failed: {exc}") from exc
        seconds = time.perf_counter() - t0
        results = []
        for out in outputs:
            best = out.outputs[0]
            results.append(Generation(
                text=best.text, finish_reason=str(best.finish_reason or "stop"),
                prompt_tokens=len(out.prompt_token_ids or ()), completion_tokens=len(best.token_ids or ()),
                seconds=seconds,
            ))
        return results

    def close(self) -> None:
        self._llm = None
