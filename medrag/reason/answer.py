"""Turning a run into an :class:`~medrag.types.Answer` — honestly.

* Nothing retrieved passes the relevance test -> "insufficient evidence", no citations (``answered_by="none"``).
* The model may not answer clinically (its profile says ``clinical_answers=False``, as for the offline 270M
  default) -> the answer *is* the evidence: the most relevant passages with verbatim quotes and sources, and
  a plain statement that real answers need an 8B medical reasoning model (``answered_by="evidence"``).
  For multiple choice it names the option the evidence favours only when exactly one option's distinctive
  words occur in the shown evidence — a word match, said to be one, not a clinical judgement.
* The model's answer cannot be parsed, says the evidence is insufficient, or fails grounding -> the
  evidence view again, with ``insufficient_evidence=True`` and the reason in ``notes``.
* Otherwise the grounded answer with its verified citations (``answered_by="model"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..config import LoopConfig, ModelProfile
from ..types import Answer, Citation, TraceStep
from .evidence import Evidence, EvidenceSet
from .grounding import ground
from .parsing import FinalDraft
from .text import coverage, normalize_space, required_terms, terms

__all__ = ["DISCLAIMER", "UNTRUSTED_LEAD", "relevant_evidence", "favoured_option", "AnswerContext", "assemble"]

DISCLAIMER = (
    "medrag is a research tool, not a medical device, and this is not medical advice. Check every statement "
    "against the cited sources and consult a qualified clinician before any clinical decision."
)
UNTRUSTED_LEAD = (
    "No answer was generated: the model in use ({model}, profile '{profile}') cannot answer medical questions "
    "faithfully, so medrag shows the retrieved evidence instead. Real answers need an 8B medical reasoning "
    "model: --llm vllm:<model> (GPU) or --llm openai:http://<host>:<port>/v1#<model>."
)
_GENERIC_OPTION_WORDS = frozenset({"yes", "no", "mayb", "maybe", "true", "fals", "none", "all", "both", "neither"})


def relevant_evidence(question: str, evidence: EvidenceSet, config: LoopConfig) -> list[Evidence]:
    """Evidence passing the relevance floor for ``question``, most question terms first, then first seen."""
    q = terms(question)
    need = required_terms(len(q), config.min_coverage, config.max_required_terms)
    scored = []
    for order, ev in enumerate(evidence):
        cov = coverage(q, terms(f"{ev.hit.title} {ev.hit.section} {ev.hit.text}"))
        if cov >= need:
            scored.append((-cov, order, ev))
    return [ev for _, _, ev in sorted(scored, key=lambda t: (t[0], t[1]))]


def favoured_option(options: Mapping[str, str], shown: Sequence[Evidence], question: str) -> str | None:
    """The one option whose distinctive words (not in other options or the question) occur in the shown
    evidence, when exactly one does; None otherwise (including yes/no/maybe-style options)."""
    if len(options) < 2 or not shown:
        return None
    ev_terms = frozenset().union(*(terms(f"{e.hit.title} {e.hit.text}") for e in shown))
    q_terms = terms(question)
    opt_terms = {k: terms(v) for k, v in options.items()}
    named = []
    for key, ts in opt_terms.items():
        others = frozenset().union(*(t for k, t in opt_terms.items() if k != key))
        distinct = ts - others - q_terms - _GENERIC_OPTION_WORDS
        if not distinct:
            return None  # an option we cannot tell apart by words: make no claim at all
        if len(distinct & ev_terms) * 2 >= len(distinct):
            named.append(key)
    return named[0] if len(named) == 1 else None


@dataclass
class AnswerContext:
    """Everything :func:`assemble` needs from a finished run."""

    question: str
    options: Mapping[str, str]
    evidence: EvidenceSet
    config: LoopConfig
    profile: ModelProfile
    model: str
    trace: tuple[TraceStep, ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    notes: tuple[str, ...] = ()


def assemble(ctx: AnswerContext, draft: FinalDraft | None) -> Answer:
    """The Answer for a run whose final model output parsed into ``draft`` (None: none/unparsable)."""
    relevant = relevant_evidence(ctx.question, ctx.evidence, ctx.config)
    notes = list(ctx.notes)
    if not relevant:
        notes.append("no retrieved passage contains enough of the question's terms (relevance floor)")
        text = ("Insufficient evidence: nothing retrieved from the index is relevant to this question, so no "
                "answer is given.")
        return _answer(ctx, text, (), insufficient=True, by="none", notes=notes)
    if not ctx.profile.clinical_answers:
        lead = UNTRUSTED_LEAD.format(model=ctx.model, profile=ctx.profile.name)
        return _evidence_answer(ctx, relevant, lead, insufficient=False, notes=notes)
    if draft is None:
        notes.append("the model's final answer could not be parsed")
        return _evidence_answer(ctx, relevant, "The model did not produce a usable answer; the most relevant "
                                "evidence is shown instead.", insufficient=True, notes=notes)
    if draft.insufficient:
        notes.append("the model judged the evidence insufficient")
        return _evidence_answer(ctx, relevant, "Insufficient evidence: the model found that the retrieved "
                                "evidence does not answer the question. The most relevant passages:",
                                insufficient=True, notes=notes)
    g = ground(draft, ctx.evidence, ctx.config, ctx.options)
    notes.extend(g.notes)
    if not g.grounded:
        return _evidence_answer(ctx, relevant, "The model's answer is not supported by the evidence it cites, "
                                "so it is withheld; the most relevant evidence is shown instead.",
                                insufficient=True, notes=notes)
    return _answer(ctx, g.answer, g.citations, insufficient=False, by="model", notes=notes,
                   option=draft.option, reasoning=draft.reasoning)


def _evidence_answer(ctx: AnswerContext, relevant: list[Evidence], lead: str, *, insufficient: bool,
                     notes: list[str]) -> Answer:
    shown = relevant[: ctx.config.evidence_shown]
    citations = tuple(ev.citation(ev.quote(ctx.question)) for ev in shown)
    lines = [lead, "", "Most relevant evidence:"]
    for i, (ev, cit) in enumerate(zip(shown, citations, strict=True), 1):
        lines.append(f"[{i}] \"{normalize_space(cit.quote)}\" — {ev.source_line()}")
    option = favoured_option(ctx.options, shown, ctx.question) if ctx.options else None
    if option is not None:
        lines += ["", f"Of the options, only {option} ({ctx.options[option]}) is named in this evidence. That is a "
                      "word match, not a clinical judgement."]
    return _answer(ctx, "\n".join(lines), citations, insufficient=insufficient, by="evidence", notes=notes,
                   option=option)


def _answer(ctx: AnswerContext, text: str, citations: tuple[Citation, ...], *, insufficient: bool, by: str,
            notes: list[str], option: str | None = None, reasoning: str = "") -> Answer:
    return Answer(
        question=ctx.question, answer=text, citations=citations, option=option, reasoning=reasoning,
        insufficient_evidence=insufficient, trace=ctx.trace, model=ctx.model, disclaimer=DISCLAIMER,
        timings=ctx.timings, answered_by=by, notes=tuple(notes),
    )
