"""Shared machinery of the reasoning loops: timed retrieval and generation, parse-with-retry, events.

Time is split three ways for every step and for the whole run: ``retrieval`` (inside the retriever),
``llm`` (inside the LLM backend) and ``overhead`` (everything else: prompt building, parsing, grounding).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ..config import LoopConfig
from ..errors import ConfigError
from ..llm.base import LLM, Generation, GenerationParams, Prompt
from ..llm.thinking import (
    forced_prompt,
    generate_budgeted,
    merge_forced,
    needs_forcing,
    stage_params,
    was_forced,
)
from ..retrieve.base import Filters, Retriever
from ..types import Hit, RetrievalStep, TraceStep
from .evidence import EvidenceSet
from .parsing import ParseError
from .prompts import PromptBuilder

__all__ = ["LoopEvent", "EventHandler", "Runner", "StepClock", "normalize_options", "Parsed", "prompt_text"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_USAGE = ("llm_calls", "prompt_tokens", "completion_tokens", "budget_forced")


@dataclass(frozen=True)
class LoopEvent:
    """Progress of a run, for live display. ``kind``: ``round`` (a round starts), ``token`` (a piece of
    streamed model text; ``stage`` says which generation), ``queries`` (follow-up queries chosen), ``search``
    (a search-tag query), ``retrieved`` (hits for queries), ``answers`` (follow-up answers), ``retry`` (unusable
    output, asking again), ``forced`` (thinking ran out of budget; the answer was forced), ``final``."""

    kind: str
    stage: str = ""
    round: int = 0
    text: str = ""
    items: tuple[str, ...] = ()


EventHandler = Callable[[LoopEvent], None]


def normalize_options(options: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """``{"A": "...", ...}`` from a mapping (letters A-Z) or a sequence (lettered in order)."""
    if not options:
        return {}
    if isinstance(options, str):
        raise ConfigError("options must be a mapping of letters to texts or a list of texts, not a string")
    if isinstance(options, Mapping):
        items = [(str(k).strip().upper(), str(v).strip()) for k, v in options.items()]
    else:
        if len(options) > 26:
            raise ConfigError("at most 26 options")
        items = [(chr(ord("A") + i), str(v).strip()) for i, v in enumerate(options)]
    for key, text in items:
        if len(key) != 1 or not key.isalpha() or not text:
            raise ConfigError(f"option {key!r}: keys must be single letters and texts non-empty")
    return dict(items)


@dataclass
class StepClock:
    """Seconds spent in retrieval and the LLM since ``start``; the rest is overhead."""

    start: float = field(default_factory=time.perf_counter)
    retrieval: float = 0.0
    llm: float = 0.0

    def timings(self) -> tuple[tuple[str, float], ...]:
        total = time.perf_counter() - self.start
        overhead = max(0.0, total - self.retrieval - self.llm)
        return (("retrieval", round(self.retrieval, 6)), ("llm", round(self.llm, 6)),
                ("overhead", round(overhead, 6)), ("total", round(total, 6)))


@dataclass(frozen=True)
class Parsed:
    """What ``generate_parsed`` found: the value (None if every attempt failed) and every prompt/output."""

    value: Any
    prompts: tuple[str, ...]
    outputs: tuple[str, ...]
    failures: tuple[str, ...]


class Runner:
    """One run's retriever, LLM, evidence set, clocks and event handler."""

    def __init__(self, retriever: Retriever, llm: LLM, config: LoopConfig, *,
                 on_event: EventHandler | None = None, filters: Filters | Mapping[str, Any] | None = None,
                 stream_stages: Sequence[str] = ("queries", "final", "search")) -> None:
        self.retriever = retriever
        self.llm = llm
        self.config = config
        self.on_event = on_event
        self.filters = filters
        self.stream_stages = frozenset(stream_stages)
        self.evidence = EvidenceSet()
        self.prompts = PromptBuilder(llm.profile)
        self.budgets = config.budgets_for(llm.profile)
        self.run_clock = StepClock()
        self.step_clock = StepClock()
        self.usage: dict[str, int] = dict.fromkeys(_USAGE, 0)
        self.run_usage: dict[str, int] = dict.fromkeys(_USAGE, 0)

    # ------------------------------------------------------------------------------------------- events

    def emit(self, kind: str, **kw: Any) -> None:
        if self.on_event is not None:
            self.on_event(LoopEvent(kind, **kw))

    def new_step(self) -> None:
        self.step_clock = StepClock()
        self.usage = dict.fromkeys(_USAGE, 0)

    def step(self, round_: int, kind: str, *, queries: Sequence[str] = (), retrievals: Sequence[RetrievalStep] = (),
             prompts: Sequence[str] = (), outputs: Sequence[str] = ()) -> TraceStep:
        """A trace step with this step's timings and LLM usage (calls, tokens, budget-forced generations)."""
        usage = tuple(self.usage.items())
        for k, v in self.usage.items():
            self.run_usage[k] += v
        self.usage = dict.fromkeys(_USAGE, 0)
        return TraceStep(round=round_, kind=kind, queries=tuple(queries), retrievals=tuple(retrievals),
                         prompts=tuple(prompts), outputs=tuple(outputs), timings=self.step_clock.timings(),
                         usage=usage)

    # ---------------------------------------------------------------------------------------- retrieval

    def search(self, queries: Sequence[str], k: int) -> tuple[list[list[Hit]], list[RetrievalStep]]:
        """All ``queries`` in ONE ``batch_search`` call; hits are registered as evidence."""
        t0 = time.perf_counter()
        results = self.retriever.batch_search(list(queries), k=k, filters=self.filters)
        dt = time.perf_counter() - t0
        self.run_clock.retrieval += dt
        self.step_clock.retrieval += dt
        steps = []
        for query, hits in zip(queries, results, strict=True):
            self.evidence.add(hits)
            steps.append(RetrievalStep(query, tuple(h.chunk_id for h in hits), tuple(float(h.score) for h in hits)))
        self.emit("retrieved", items=tuple(dict.fromkeys(h.chunk_id for hits in results for h in hits)))
        return results, steps

    # --------------------------------------------------------------------------------------- generation

    def base_params(self, stop: Sequence[str] = (), attempt: int = 0) -> GenerationParams:
        """Sampling for a call (max_tokens is set per stage by the budget): the loop config's temperature and
        top_p, else the profile's; retries sample at ``retry_temperature`` with their own seed."""
        cfg, p = self.config, self.llm.profile
        temp = (cfg.temperature if cfg.temperature is not None else p.temperature) if attempt == 0 \
            else cfg.retry_temperature
        top_p = cfg.top_p if cfg.top_p is not None else p.top_p
        return GenerationParams(max_tokens=1, temperature=temp, top_p=top_p, stop=tuple(stop),
                                seed=None if attempt == 0 else attempt)

    def _timed(self, fn: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            dt = time.perf_counter() - t0
            self.run_clock.llm += dt
            self.step_clock.llm += dt

    def _count(self, gens: Sequence[Generation]) -> list[Generation]:
        for g in gens:
            self.usage["llm_calls"] += 1
            self.usage["prompt_tokens"] += g.prompt_tokens
            self.usage["completion_tokens"] += g.completion_tokens
        return list(gens)

    def _call(self, prompts: list[Prompt], params: GenerationParams) -> list[Generation]:
        return self._count(self._timed(lambda: self.llm.generate(prompts, params)))

    def _forced(self, gens: Sequence[Generation], stage: str) -> None:
        n = sum(was_forced(g) for g in gens)
        if n:
            self.usage["budget_forced"] += n
            self.emit("forced", stage=stage, text=f"{n} generation(s) ran out of thinking budget; answer forced")

    def generate(self, prompts: Sequence[Prompt], stage: str, stop: Sequence[str] = (), cue: str = "") -> list[Generation]:
        """A round's prompts within the stage budget: one batched call when ``config.concurrent``, else one
        call per prompt (plus one continuation call for outputs cut inside their thinking)."""
        budget, params = self.budgets.of(stage), self.base_params(stop)
        self.emit("generating", stage=stage)
        if self.config.concurrent:
            gens = generate_budgeted(self._call, list(prompts), self.llm.profile, budget, params, cue=cue)
        else:
            gens = [generate_budgeted(self._call, [p], self.llm.profile, budget, params, cue=cue)[0] for p in prompts]
        self._forced(gens, stage)
        return gens

    def generate_one(self, prompt: Prompt, stage: str, *, stop: Sequence[str] = (), round_: int = 0,
                     attempt: int = 0, cue: str = "", opened: bool | None = None) -> Generation:
        """One generation within the stage budget, streamed as ``token`` events when someone listens to
        ``stage``. ``opened``: the prompt leaves a think block open (default: the profile's prefill)."""
        profile, budget = self.llm.profile, self.budgets.of(stage)
        params = self.base_params(stop, attempt)
        self.emit("generating", stage=stage)
        if self.on_event is None or stage not in self.stream_stages:
            gen = generate_budgeted(self._call, [prompt], profile, budget, params, cue=cue, opened=opened)[0]
            self._forced([gen], stage)
            return gen

        def on_text(piece: str) -> None:
            self.emit("token", stage=stage, round=round_, text=piece)

        def one(p: Prompt, gp: GenerationParams) -> Generation:
            return self._count([self._timed(lambda: self.llm.stream_generate(p, gp, on_text))])[0]

        gen = one(prompt, stage_params(budget, profile, params))
        prefilled = profile.think_prefill if opened is None else opened
        if profile.thinks and needs_forcing(gen, profile, opened=prefilled):
            cont_prompt, addition = forced_prompt(prompt, gen, profile, cue)
            on_text(addition)
            gen = merge_forced(gen, addition, one(cont_prompt, replace(params, max_tokens=budget.answer)))
            self._forced([gen], stage)
        return gen

    def generate_parsed(self, prompt: Prompt, parse: Callable[[str], T], *, stage: str, round_: int = 0,
                        stop: Sequence[str] = (), accept: Callable[[T], str | None] | None = None,
                        retries: int | None = None, echo: str = "", cue: str = "") -> Parsed:
        """Generate and parse, retrying up to ``retries`` (default ``config.parse_retries``) times when
        ``parse`` raises ParseError or ``accept(value)`` names a problem. A value that parsed but was not
        accepted is returned when no attempt does better. ``echo``: prompt text the output continues, shown
        to listeners before each attempt's tokens; a ``retry`` event announces each retry. ``cue``: the answer
        cue appended after a think block closed by budget forcing."""
        retries = self.config.parse_retries if retries is None else retries
        prompts: list[str] = []
        outputs: list[str] = []
        failures: list[str] = []
        fallback: Any = None
        current = prompt
        for attempt in range(retries + 1):
            if attempt:
                self.emit("retry", stage=stage, round=round_, text=failures[-1])
            if echo:
                self.emit("token", stage=stage, round=round_, text=echo)
            gen = self.generate_one(current, stage, stop=stop, round_=round_, attempt=attempt, cue=cue)
            prompts.append(prompt_text(current))
            outputs.append(gen.text)
            problem: str | None
            try:
                value = parse(gen.text)
            except ParseError as exc:
                problem = str(exc)
            else:
                rejected = accept(value) if accept is not None else None
                if rejected is None:
                    return Parsed(value, tuple(prompts), tuple(outputs), tuple(failures))
                problem, fallback = rejected, value
            failures.append(f"{stage} attempt {attempt + 1}: {problem}")
            log.info("%s: unusable output (%s); %s", stage, problem, "retrying" if attempt < retries else "giving up")
            current = self.prompts.correction(prompt, gen.text, problem)
        return Parsed(fallback, tuple(prompts), tuple(outputs), tuple(failures))


def prompt_text(prompt: Prompt) -> str:
    """A prompt as text for the trace (chat messages as ``[role]`` blocks)."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in prompt)
