"""Evaluation generations with a thinking budget and an answer budget, and budget forcing.

A reasoning model (its profile has think tags) first thinks, then answers. Every evaluation stage (QA,
MedRGB, query expansion) gives it ``thinking`` tokens to think and ``answer`` tokens to answer: one generation
of at most ``thinking + answer`` tokens. A generation that stops while its think block is still open
(``finish_reason == "length"``, no close tag) is *forced*: the close tag and an answer cue are appended and
the model continues once, with ``answer`` tokens (completion prompts continue the text; chat prompts continue
a trailing assistant message). The visible answer (:func:`medrag.evaluation.qa.visible_answer`) never
contains thinking, closed or not. A model without think tags gets ``answer`` tokens and no forcing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..reason.parsing import split_think

__all__ = ["Budget", "Generated", "generate_budgeted", "thinking_tags"]

#: thinking tokens a reasoning profile gets when a stage does not say (R1-style models often think
#: 500-2,000 tokens on an exam question; raise it with the stage's ``thinking_tokens`` option)
DEFAULT_THINKING_TOKENS = 2048


@dataclass(frozen=True)
class Budget:
    """Tokens to think (``None``: :data:`DEFAULT_THINKING_TOKENS` for a thinking profile) and to answer."""

    answer: int
    thinking: int | None = None

    def thinking_for(self, llm: Any) -> int:
        """The thinking budget for ``llm``'s profile (0 when it does not think aloud)."""
        if thinking_tags(llm) == (None, None):
            return 0
        return DEFAULT_THINKING_TOKENS if self.thinking is None else self.thinking


@dataclass(frozen=True)
class Generated:
    """One budgeted generation: the full text (thinking included), whether it was forced, its finish reason."""

    text: str
    forced: bool = False
    finish_reason: str = "stop"


def thinking_tags(llm: Any) -> tuple[str | None, str | None]:
    profile = getattr(llm, "profile", None)
    return getattr(profile, "think_open", None), getattr(profile, "think_close", None)


def _open_thinking(text: str, tags: tuple[str | None, str | None]) -> bool:
    """True when ``text`` ends inside a think block (opened, never closed)."""
    open_, close = tags
    if not open_ or not close:
        return False
    return text.rfind(open_) > text.rfind(close)


def _continuation(prompt: Any, text: str, cue: str) -> Any:
    if isinstance(prompt, str):
        return prompt + text + cue
    messages = [dict(m) for m in prompt]
    if messages and messages[-1]["role"] == "assistant":
        messages[-1]["content"] += text + cue
        return messages
    return [*messages, {"role": "assistant", "content": text + cue}]


def generate_budgeted(llm: Any, prompts: Sequence[Any], budget: Budget, *, stop: tuple[str, ...] = (),
                      answer_cue: str = "\n\nAnswer:", temperature: float = 0.0) -> list[Generated]:
    """Generate for ``prompts`` within ``budget``; generations cut off while thinking are forced once.

    ``stop`` applies to the answer only: a thinking profile's first generation runs without it (a stop such
    as a newline would end the thinking), and its answer is cut at the first stop afterwards."""
    from ..llm import GenerationParams

    tags = thinking_tags(llm)
    thinking = budget.thinking_for(llm)
    first_stop = stop if thinking == 0 else ()
    params = GenerationParams(max_tokens=thinking + budget.answer, temperature=temperature, stop=first_stop)
    gens = llm.generate(list(prompts), params)
    out = [Generated(g.text, False, g.finish_reason) for g in gens]
    forced = [i for i, g in enumerate(gens) if _open_thinking(g.text, tags)]
    if forced:
        cue = f"{tags[1]}{answer_cue}"
        more = llm.generate([_continuation(prompts[i], gens[i].text, cue) for i in forced],
                            GenerationParams(max_tokens=budget.answer, temperature=temperature, stop=stop))
        for i, g in zip(forced, more, strict=True):
            out[i] = Generated(gens[i].text + cue + g.text, True, g.finish_reason)
    if stop and thinking:
        out = [Generated(_cut_answer(g.text, tags, stop), g.forced, g.finish_reason) for g in out]
    return out


def _cut_answer(text: str, tags: tuple[str | None, str | None], stop: Sequence[str]) -> str:
    """``text`` with its answer (what follows the thinking) cut at the first stop string."""
    close = tags[1] or ""
    head, sep, answer = text.rpartition(close) if close and close in text else ("", "", text)
    lead = len(answer) - len(answer.lstrip())
    body = answer[lead:]
    cuts = [i for i in (body.find(s) for s in stop) if i >= 0]
    return head + sep + answer[:lead] + (body[: min(cuts)] if cuts else body)


def think_split(text: str, llm: Any) -> tuple[str, str]:
    """(thinking, visible answer) of ``text`` by ``llm``'s profile tags (``<think>`` when it has none)."""
    open_, close = thinking_tags(llm)
    return split_think(text, open_ or "<think>", close or "</think>")
