"""Thinking blocks and thinking budgets — shared by every stage that parses model output.

Pure helpers:

* :func:`split_think` / :func:`visible_text`: (thinking, visible) parts of an output. An unclosed think block
  never leaks: everything after an unclosed open tag is thinking; with ``opened=True`` (the chat template or
  a prefill opened the block) the text before the first close tag is thinking, and text without any close
  tag is all thinking.
* :func:`ends_in_think`: does the text end inside an open think block?

Budget forcing (:func:`generate_budgeted`): a stage's generation gets ``thinking + answer`` tokens. When it
stops for length inside its think block, the block is closed, an answer cue appended, and the model continues
once with the ``answer`` budget. The merged :class:`~medrag.llm.base.Generation` carries
``meta["budget_forced"] = "1"`` so loops can record it in their trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ..config import ModelProfile, StageBudget
from .base import Generation, GenerationParams, Prompt, extend_prompt

__all__ = [
    "split_think",
    "visible_text",
    "ends_in_think",
    "stage_params",
    "needs_forcing",
    "forced_prompt",
    "merge_forced",
    "generate_budgeted",
    "was_forced",
]

FORCED = "budget_forced"


def split_think(text: str, open_tag: str | None, close_tag: str | None, *, opened: bool = False) -> tuple[str, str]:
    """(thinking, visible). An unclosed think block swallows the rest; a stray close tag before any open tag
    (the template opened the block) ends thinking there; ``opened``: the block was open before ``text``."""
    if not open_tag or not close_tag:
        return "", text.strip()
    thoughts: list[str] = []
    rest = text
    head, sep, tail = rest.partition(close_tag)
    if sep and open_tag not in head:  # thinking started in the prompt (template-opened block)
        thoughts.append(head)
        rest = tail
    elif opened and not sep:
        return text.strip(), ""
    out: list[str] = []
    while True:
        before, sep, after = rest.partition(open_tag)
        out.append(before)
        if not sep:
            break
        inside, sep2, rest = after.partition(close_tag)
        thoughts.append(inside)
        if not sep2:
            break
    return "\n".join(t.strip() for t in thoughts if t.strip()), "".join(out).strip()


def visible_text(text: str, profile: ModelProfile, *, opened: bool | None = None) -> str:
    """The part of ``text`` outside thinking, by the profile's tags (``opened`` default: the profile's
    ``think_prefill``)."""
    prefilled = profile.think_prefill if opened is None else opened
    return split_think(text, profile.think_open, profile.think_close, opened=prefilled)[1]


def ends_in_think(text: str, open_tag: str | None, close_tag: str | None, *, opened: bool = False) -> bool:
    """Whether ``text`` ends inside an open think block."""
    if not open_tag or not close_tag:
        return False
    last_open, last_close = text.rfind(open_tag), text.rfind(close_tag)
    if last_open < 0 and last_close < 0:
        return opened
    return last_open > last_close


def stage_params(budget: StageBudget, profile: ModelProfile, base: GenerationParams) -> GenerationParams:
    """``base`` with max_tokens = the stage's thinking + answer budget (answer only for non-thinking models)."""
    tokens = budget.total if profile.thinks else budget.answer
    return replace(base, max_tokens=tokens)


def needs_forcing(gen: Generation, profile: ModelProfile, *, opened: bool = False) -> bool:
    """A generation cut for length inside its think block."""
    return gen.finish_reason == "length" and ends_in_think(gen.text, profile.think_open, profile.think_close,
                                                          opened=opened)


def forced_prompt(prompt: Prompt, gen: Generation, profile: ModelProfile, cue: str) -> tuple[Prompt, str]:
    """(continuation prompt, text appended to the output): the output so far, the close tag, the cue."""
    addition = f"\n{profile.think_close}\n{cue}"
    return extend_prompt(prompt, gen.text + addition), addition


def merge_forced(gen: Generation, addition: str, cont: Generation) -> Generation:
    """One Generation for an output, its forced close + cue, and its continuation."""
    return Generation(
        text=gen.text + addition + cont.text, finish_reason=cont.finish_reason,
        prompt_tokens=gen.prompt_tokens + cont.prompt_tokens,
        completion_tokens=gen.completion_tokens + cont.completion_tokens, seconds=gen.seconds + cont.seconds,
        meta=(*gen.meta, *cont.meta, (FORCED, "1")),
    )


def was_forced(gen: Generation) -> bool:
    return dict(gen.meta).get(FORCED) == "1"


def generate_budgeted(generate: Callable[[list[Prompt], GenerationParams], list[Generation]],
                      prompts: Sequence[Prompt], profile: ModelProfile, budget: StageBudget,
                      params: GenerationParams, *, cue: str = "", opened: bool | None = None) -> list[Generation]:
    """Generate a batch within a stage budget, forcing an answer from outputs cut inside thinking.

    ``generate`` is ``llm.generate`` (or a timed wrapper of it). At most two calls: the batch, then one batch of
    continuations (``budget.answer`` tokens each) for the outputs that ran out while thinking."""
    prefilled = profile.think_prefill if opened is None else opened
    batch = list(prompts)
    gens = generate(batch, stage_params(budget, profile, params))
    todo = [i for i, g in enumerate(gens) if profile.thinks and needs_forcing(g, profile, opened=prefilled)]
    if not todo:
        return gens
    forced = [forced_prompt(batch[i], gens[i], profile, cue) for i in todo]
    conts = generate([p for p, _ in forced], replace(params, max_tokens=budget.answer))
    out = list(gens)
    for i, (_, addition), cont in zip(todo, forced, conts, strict=True):
        out[i] = merge_forced(gens[i], addition, cont)
    return out
