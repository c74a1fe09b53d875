"""Grounding checks: is a model's answer supported by the evidence it cites?

1. Citation labels that name no evidence the model was shown in this run are dropped (and removed from
   the text).
2. Each kept citation gets a quote that really occurs in its chunk: the model's quote when it is verbatim
   (up to whitespace/case) and not text addressed to a model (an injected instruction), otherwise the chunk
   sentence that best matches the claims citing it.
3. Each answer sentence is *supported* when at least ``support_threshold`` of its content terms occur in
   the evidence it cites (a sentence without labels is checked against all cited evidence).
4. The answer is *grounded* when it cites valid evidence and at least ``min_supported`` of its sentences are
   supported. An ungrounded answer is not shown as an answer (see :mod:`medrag.reason.answer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import LoopConfig
from ..types import Citation
from .evidence import EvidenceSet
from .parsing import FinalDraft, cited_labels, remove_labels, strip_labels
from .text import addressed_to_model, find_quote, sentences, support, terms

__all__ = ["Grounding", "ground"]


@dataclass(frozen=True)
class Grounding:
    answer: str
    citations: tuple[Citation, ...]
    supported: float  # fraction of answer sentences supported
    grounded: bool
    notes: tuple[str, ...]


def ground(draft: FinalDraft, evidence: EvidenceSet, config: LoopConfig,
           options: Mapping[str, str] | None = None) -> Grounding:
    """Check ``draft`` against ``evidence`` (see the module docstring)."""
    notes: list[str] = []
    labels = cited_labels(draft.answer) + [lab for lab, _ in draft.quotes]
    unknown = sorted({lab for lab in labels if evidence.citable(lab) is None})
    answer = draft.answer
    if unknown:
        notes.append(f"dropped citations to evidence the model was not shown: {', '.join(unknown)}")
        answer = remove_labels(answer, unknown)
    valid = [lab for lab in dict.fromkeys(labels) if evidence.citable(lab) is not None]
    claims = _claims_by_label(answer)
    quotes = dict(draft.quotes)
    citations = []
    for lab, ev in ((lab, evidence.citable(lab)) for lab in valid):
        if ev is None:
            continue
        quote = find_quote(quotes[lab], ev.hit.text) if lab in quotes else None
        if lab in quotes and quote is None:
            notes.append(f"quote for {lab} does not occur in {ev.hit.chunk_id}; replaced by a matching sentence")
        elif quote is not None and addressed_to_model(quote):
            notes.append(f"quote for {lab} is text addressed to a model, not evidence; replaced by a matching sentence")
            quote = None
        citations.append(ev.citation(quote or ev.quote(claims.get(lab) or answer)))
    frac = _supported_fraction(answer, valid, evidence, config.support_threshold)
    grounded = bool(valid) and frac >= config.min_supported
    if not valid:
        notes.append("the answer cites no valid evidence")
    elif not grounded:
        notes.append(f"only {frac:.0%} of the answer's sentences are supported by the evidence they cite")
    if options and draft.option is None:
        notes.append("no valid option was chosen")
    return Grounding(answer, tuple(citations), frac, grounded, tuple(notes))


def _claims_by_label(answer: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for sent in sentences(answer):
        for lab in cited_labels(sent):
            out.setdefault(lab, []).append(sent)
    return {k: " ".join(v) for k, v in out.items()}


def _supported_fraction(answer: str, valid: list[str], evidence: EvidenceSet, threshold: float) -> float:
    sents = [s for s in sentences(answer) if terms(strip_labels(s))]
    if not sents or not valid:
        return 0.0
    term_cache = {lab: terms(ev.hit.title + " " + ev.hit.text) for lab in valid if (ev := evidence.citable(lab))}
    all_terms = frozenset().union(*term_cache.values())
    ok = 0
    for sent in sents:
        own = [lab for lab in cited_labels(sent) if lab in term_cache]
        ev_terms = frozenset().union(*(term_cache[lab] for lab in own)) if own else all_terms
        ok += support(strip_labels(sent), ev_terms) >= threshold
    return ok / len(sents)
