"""The i-MedRAG follow-up loop and single-pass RAG.

FollowUpLoop, per question:

0. retrieve ``k`` chunks for the question itself;
1. for each of ``rounds`` rounds: the model writes up to ``queries_per_round`` follow-up queries (or, with
   ``early_stop``, says ENOUGH -> stop early); the round's queries are retrieved with ONE ``batch_search``; each query gets a plain
   RAG answer over its own evidence, all of the round's answer prompts in ONE ``generate`` call (batched /
   concurrent in the backend);
2. a final prompt shows the follow-up Q&A (fenced as data, like evidence) and up to ``final_k`` evidence
   chunks; its answer is parsed, grounded and assembled by :func:`medrag.reason.answer.assemble`. A model
   whose profile does not allow clinical answers is not asked for one: the evidence is shown instead.

Every generation runs within its stage's thinking + answer budget (``LoopConfig.budgets`` or the profile's);
one cut inside its think block is closed and continued for the answer (see :mod:`medrag.llm.thinking`).

Only model output is parsed; retrieved text never steers the loop (it sits in delimited data blocks).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import LoopConfig
from ..llm.base import LLM
from ..llm.thinking import visible_text
from ..retrieve.base import Filters, Retriever, check_query
from ..types import Answer, TraceStep
from .answer import AnswerContext, assemble, relevant_evidence
from .evidence import Evidence
from .parsing import NOT_FOUND, FinalDraft, cited_labels, parse_final, parse_queries
from .prompts import QUERY_PREFIX, FollowUp
from .runner import EventHandler, Runner, normalize_options, prompt_text

__all__ = ["FollowUpLoop", "SinglePassRAG"]

log = logging.getLogger(__name__)


class _Base:
    def __init__(self, retriever: Retriever, llm: LLM, config: LoopConfig | None = None) -> None:
        self.retriever = retriever
        self.llm = llm
        self.config = config or LoopConfig()

    def _runner(self, on_event: EventHandler | None, filters: Any) -> Runner:
        return Runner(self.retriever, self.llm, self.config, on_event=on_event, filters=filters)

    def _final(self, r: Runner, question: str, options: dict[str, str], followups: Sequence[FollowUp],
               first: Sequence[Evidence], trace: list[TraceStep], notes: list[str]) -> Answer:
        """Final generation, then grounding and assembly. The generation is skipped when nothing relevant was
        found, and for a profile whose answers are never shown (``clinical_answers=False``)."""
        draft: FinalDraft | None = None
        trusted = self.llm.profile.clinical_answers
        if not trusted:
            r.new_step()
            trace.append(r.step(len(trace), "final"))
            notes.append("final generation skipped: this model's answers are never shown (profile "
                         f"'{self.llm.profile.name}')")
        elif relevant_evidence(question, r.evidence, self.config):
            r.new_step()
            chosen = _final_evidence(first, followups, r, self.config.final_k)
            prompt = r.prompts.final(question, options, followups, r.evidence.block(chosen, self.config.evidence_chars),
                                     self.config.history_chars)
            prefix = "" if r.prompts.chat else "Answer:"
            parsed = r.generate_parsed(
                prompt, lambda t: parse_final(prefix + self._visible(t), options),
                stage="final", stop=() if r.prompts.chat else ("\n",),
                accept=(lambda d: "no valid option letter" if options and d.option is None else None),
                cue="Answer:" if r.prompts.chat else "",
            )
            draft = parsed.value
            notes.extend(parsed.failures)
            trace.append(r.step(len(trace), "final", queries=(question,), prompts=parsed.prompts,
                                outputs=parsed.outputs))
        ctx = AnswerContext(question, options, r.evidence, self.config, self.llm.profile, self.llm.name,
                            tuple(trace), r.run_clock.timings(), tuple(notes))
        answer = assemble(ctx, draft)
        r.emit("final", text=answer.answer)
        return answer

    def _visible(self, text: str) -> str:
        return visible_text(text, self.llm.profile)


def _final_evidence(first: Sequence[Evidence], followups: Sequence[FollowUp], r: Runner, limit: int) -> list[Evidence]:
    """The question's own hits first, then evidence the follow-up answers cited, then the rest — de-duplicated."""
    order: dict[str, Evidence] = {}
    for ev in first:
        order.setdefault(ev.label, ev)
    for f in followups:
        for lab in f.labels:
            cited = r.evidence.get(lab)
            if cited is not None:
                order.setdefault(lab, cited)
    for ev in r.evidence:
        order.setdefault(ev.label, ev)
    return list(order.values())[:limit]


class SinglePassRAG(_Base):
    """Retrieve ``final_k`` chunks for the question, answer once. Same answer rules as the loop."""

    def run(self, question: str, options: Mapping[str, str] | Sequence[str] | None = None, *,
            filters: Filters | Mapping[str, Any] | None = None, on_event: EventHandler | None = None) -> Answer:
        question = check_query(question)
        opts = normalize_options(options)
        r = self._runner(on_event, filters)
        _, steps = r.search([question], self.config.final_k)
        first = list(r.evidence)  # the question's hits, E1..En in rank order
        trace = [r.step(0, "retrieve", queries=(question,), retrievals=steps)]
        return self._final(r, question, opts, [], first, trace, [])


class FollowUpLoop(_Base):
    """i-MedRAG: rounds of follow-up queries, each answered by RAG, then a grounded final answer.

    ``FollowUpLoop(retriever, llm, config=None).run(question, options=None) -> Answer``; ``retriever``
    implements :class:`~medrag.retrieve.base.Retriever`, ``llm`` implements :class:`~medrag.llm.LLM`,
    ``config`` is a :class:`~medrag.config.LoopConfig` (defaults: 4 rounds x 3 queries, k=4).
    ``options``: multiple-choice options as ``{"A": "...", ...}`` or a list. ``on_event`` receives
    :class:`~medrag.reason.runner.LoopEvent` progress (streamed tokens, queries, hits) for live display.
    """

    def run(self, question: str, options: Mapping[str, str] | Sequence[str] | None = None, *,
            filters: Filters | Mapping[str, Any] | None = None, on_event: EventHandler | None = None) -> Answer:
        question = check_query(question)
        opts = normalize_options(options)
        r = self._runner(on_event, filters)
        (q_hits,), steps = r.search([question], self.config.k)
        first = r.evidence.add(q_hits)
        trace = [r.step(0, "retrieve", queries=(question,), retrievals=steps)]
        followups: list[FollowUp] = []
        notes: list[str] = []
        for rnd in range(1, self.config.rounds + 1):
            if not self._round(r, rnd, question, opts, followups, trace, notes):
                break
        return self._final(r, question, opts, followups, first, trace, notes)

    def _round(self, r: Runner, rnd: int, question: str, opts: dict[str, str], followups: list[FollowUp],
               trace: list[TraceStep], notes: list[str]) -> bool:
        """One round; False when the loop should stop (ENOUGH, or no usable queries)."""
        cfg = self.config
        r.new_step()
        r.emit("round", round=rnd)
        # queries copied from the few-shot examples are not follow-ups of this question
        seen = [question] + [f.query for f in followups] + list(r.prompts.example_queries)
        prefix = "" if r.prompts.chat else QUERY_PREFIX
        parsed = r.generate_parsed(
            r.prompts.queries(question, opts, followups, cfg.queries_per_round, history_chars=cfg.history_chars,
                              allow_enough=cfg.early_stop),
            lambda t: parse_queries(self._visible(t), limit=cfg.queries_per_round, seen=seen, prefix=prefix,
                                    allow_enough=cfg.early_stop),
            stage="queries", round_=rnd, stop=() if r.prompts.chat else _query_stops(cfg.queries_per_round),
            echo=prefix,
        )
        notes.extend(parsed.failures)
        plan = parsed.value
        if plan is None or plan.enough:
            kind = "enough" if plan is not None else "queries-failed"
            trace.append(r.step(rnd, kind, prompts=parsed.prompts, outputs=parsed.outputs))
            if plan is None:
                notes.append(f"round {rnd}: no usable follow-up queries after {len(parsed.outputs)} attempts")
            return False
        r.emit("queries", round=rnd, items=plan.queries)
        results, steps = r.search(plan.queries, cfg.k)
        evs = [r.evidence.add(hits) for hits in results]
        # a query that retrieved nothing is "not found" without asking the model
        asked = [(q, ev) for q, ev in zip(plan.queries, evs, strict=True) if ev]
        prompts = [r.prompts.followup_answer(q, r.evidence.block(ev, cfg.evidence_chars)) for q, ev in asked]
        stop = () if r.prompts.chat else ("\n",)  # completion prompts answer on the "Answer:" line
        gens = r.generate(prompts, "followup", stop) if prompts else []
        by_query = {q: " ".join(self._visible(g.text).split()) for (q, _), g in zip(asked, gens, strict=True)}
        answers = []
        for q in plan.queries:
            text = by_query.get(q) or NOT_FOUND
            followups.append(FollowUp(q, text, tuple(_labels_in(text, r))))
            answers.append(text)
        r.emit("answers", round=rnd, items=tuple(answers))
        trace.append(r.step(rnd, "follow-up", queries=plan.queries, retrievals=steps,
                            prompts=parsed.prompts + tuple(prompt_text(p) for p in prompts),
                            outputs=parsed.outputs + tuple(g.text for g in gens)))
        return True


def _query_stops(m: int) -> tuple[str, ...]:
    """Completion prompts: stop after the m-th numbered line or at anything that is not a query line."""
    return ("\n\n", f"\n{m + 1}.", "\nQ", "\nA", "\nKnown", "Question:")


def _labels_in(text: str, r: Runner) -> list[str]:
    return [lab for lab in cited_labels(text) if r.evidence.citable(lab) is not None]
