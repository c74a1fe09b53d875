"""Evaluation generations within a stage's thinking and answer budgets (QA, MedRGB, query expansion).

The budgets are the model profile's (``profile.budgets.qa`` / ``.medrgb`` / ``.expansion``), each overridable
by the evaluation's own options. A thinking profile gets ``thinking + answer`` tokens in one generation; one
that stops inside its think block is forced to answer (:func:`medrag.llm.thinking.generate_budgeted`: the
block is closed, an answer cue appended, one continuation with the answer budget). A stop string of the stage
(QA's newline) applies to the answer only, never to the thinking. Sampling is the profile's (R1-style cards
ask for temperature 0.6, top_p 0.95; the offline default is greedy), seeded. What is scored is the visible
answer (:func:`visible`): thinking — closed, cut off, or opened by the template — never is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..config import ModelProfile, StageBudget
from ..llm import GenerationParams
from ..llm.thinking import generate_budgeted, visible_text, was_forced

__all__ = ["Generated", "stage_budget", "generate_stage", "visible", "profile_of"]


@dataclass(frozen=True)
class Generated:
    """One budgeted generation: the full text (thinking included), whether it was forced, its finish reason."""

    text: str
    forced: bool = False
    finish_reason: str = "stop"


def profile_of(llm: Any) -> ModelProfile:
    profile = getattr(llm, "profile", None)
    return profile if isinstance(profile, ModelProfile) else ModelProfile(think_open=None, think_close=None)


def stage_budget(llm: Any, stage: str, *, answer: int | None = None, thinking: int | None = None) -> StageBudget:
    """``stage``'s budget from ``llm``'s profile with the given overrides; 0 thinking for a profile that does
    not think aloud."""
    profile = profile_of(llm)
    base = profile.budgets.of(stage)
    budget = replace(base, answer=base.answer if answer is None else answer,
                     thinking=base.thinking if thinking is None else thinking)
    return budget if profile.thinks else replace(budget, thinking=0)


def visible(text: str, llm: Any) -> str:
    """``text`` without its thinking, by ``llm``'s profile (its tags, and whether the template opens the block)."""
    return visible_text(text, profile_of(llm))


def generate_stage(llm: Any, prompts: Sequence[Any], budget: StageBudget, *, stop: tuple[str, ...] = (),
                   cue: str = "Answer:", seed: int = 0) -> list[Generated]:
    """Generate for ``prompts`` within ``budget`` (forcing an answer out of an overrun think block)."""
    profile = profile_of(llm)
    thinking = profile.thinks and budget.thinking > 0
    params = GenerationParams(max_tokens=budget.total, temperature=profile.temperature, top_p=profile.top_p,
                              stop=() if thinking else stop, seed=seed)
    gens = generate_budgeted(llm.generate, list(prompts), profile, budget, params, cue=cue)
    out = [Generated(g.text, was_forced(g), g.finish_reason) for g in gens]
    if stop and thinking:
        out = [replace(g, text=_cut_answer(g.text, profile.think_close or "", stop)) for g in out]
    return out


def _cut_answer(text: str, close: str, stop: Sequence[str]) -> str:
    """``text`` with its answer (what follows the last close tag) cut at the first stop string."""
    head, sep, answer = text.rpartition(close) if close and close in text else ("", "", text)
    lead = len(answer) - len(answer.lstrip())
    body = answer[lead:]
    cuts = [i for i in (body.find(s) for s in stop) if i >= 0]
    return head + sep + answer[:lead] + (body[: min(cuts)] if cuts else body)
