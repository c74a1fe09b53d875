"""MedRGB prompts, response parsing and metrics (small pure functions).

Metrics, per (scenario, p_sig), as MedRGB defines them:

* ``accuracy`` – main answers equal to the gold option letter;
* ``insufficient_rate`` – answers that are "insufficient information" (sufficiency scenario);
* ``noise_detection_rate`` – noise documents the model listed as irrelevant / noise documents shown
  (pooled over items, sufficiency);
* ``sub_exact_match`` / ``sub_f1`` – SQuAD-normalised exact match and token F1 of each sub-question's answer
  against the gold sub-answer (integration, robustness; an unanswered sub-question scores 0);
* ``factual_error_detection_rate`` – counterfactual documents the model marked factually incorrect /
  counterfactual documents shown (pooled, robustness; undefined at p_sig = 100 where none is shown).

Responses are JSON objects (the prompt asks for one); the first JSON object in the text is used, and when
there is none the main answer falls back to the first standalone option letter.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .medrgb import INSUFFICIENT, MedRGBInstance, SubQA

__all__ = [
    "build_prompt",
    "parse_json_response",
    "extract_choice",
    "normalize_answer",
    "exact_match",
    "token_f1",
    "score_response",
    "aggregate",
]

_INSTRUCTIONS = {
    "standard": (
        "Answer the multiple-choice medical question using the documents. Think step by step, then reply with "
        'one JSON object: {"reasoning": "...", "answer_choice": "<letter>"}.'
    ),
    "sufficiency": (
        "Answer the multiple-choice medical question using the documents. Some documents may be irrelevant: "
        "list the ids of relevant and irrelevant documents. If no document helps and you are not certain, set "
        f'answer_choice to "{INSUFFICIENT}". Reply with one JSON object: {{"relevant_doc_ids": [...], '
        '"irrelevant_doc_ids": [...], "reasoning": "...", "answer_choice": "<letter or insufficient information>"}.'
    ),
    "integration": (
        "Answer each sub-question with a short span copied from the one document that answers it, then use "
        "the sub-answers to answer the multiple-choice main question. Some documents may be irrelevant. Reply "
        'with one JSON object: {"sub_1": {"question": "...", "answer": "...", "doc_id": "..."}, ..., '
        '"main": {"reasoning": "...", "answer_choice": "<letter>"}}.'
    ),
    "robustness": (
        "Each sub-question has one relevant document, but some documents contain factual errors. For each "
        "sub-question name its document, say whether the document is factually correct, and answer in at most "
        "five words: copy from the document when it is correct, give the correct fact when it is not. Then "
        'answer the main question. Reply with one JSON object: {"sub_1": {"question": "...", "doc_id": "...", '
        '"factual_correctness": "true|false", "answer": "..."}, ..., "main": {"reasoning": "...", '
        '"answer_choice": "<letter>"}}.'
    ),
}


def build_prompt(instance: MedRGBInstance, doc_chars: int = 1000) -> str:
    """The prompt for one instance: instructions, documents (each cut to ``doc_chars``), question, options,
    sub-questions, ending in ``JSON answer:``."""
    docs = "\n\n".join(
        f"[Document {i}] id: {d.doc_id}\nTitle: {d.title}\n{d.text[:doc_chars]}"
        for i, d in enumerate(instance.documents, 1)
    )
    options = "\n".join(f"{k}. {v}" for k, v in instance.question.options)
    parts = [_INSTRUCTIONS[instance.scenario], f"Documents:\n{docs or '(none)'}",
             f"Question: {instance.question.question}", f"Options:\n{options}"]
    if instance.sub_qas:
        parts.append("Sub-questions:\n" + "\n".join(f"sub_{i}. {s.question}" for i, s in enumerate(instance.sub_qas, 1)))
    parts.append("JSON answer:")
    return "\n\n".join(parts)


def parse_json_response(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (code fences and surrounding prose allowed), else None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _choice(value: Any, letters: str) -> str | None:
    text = str(value).strip()
    if INSUFFICIENT in text.lower() or "insufficient" in text.lower():
        return INSUFFICIENT
    m = re.match(rf"^\(?([{letters}])\b", text.upper())
    return m.group(1) if m else None


def extract_choice(text: str, letters: str = "ABCD") -> str | None:
    """The main answer: an option letter or INSUFFICIENT; None when the response names neither."""
    obj = parse_json_response(text)
    if obj is not None:
        main: Any = obj.get("main") if isinstance(obj.get("main"), Mapping) else obj
        for key in ("answer_choice", "answer", "choice"):
            if key in main:
                return _choice(main[key], letters)
    if "insufficient information" in text.lower():
        return INSUFFICIENT
    m = re.search(rf"\b([{letters}])\b", text)
    return m.group(1) if m else None


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace."""
    text = "".join(c for c in str(text).lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 (multiset overlap of normalised tokens)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _sub_answers(obj: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if obj is None:
        return []
    keys = sorted((k for k in obj if re.fullmatch(r"sub_?\d+", str(k))), key=lambda k: int(re.sub(r"\D", "", k)))
    return [dict(obj[k]) for k in keys if isinstance(obj[k], Mapping)]


def _match_subs(asked: tuple[SubQA, ...], given: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The model's answer for each asked sub-question: by question text when it repeats it, else by position."""
    by_text = {normalize_answer(str(g.get("question", ""))): g for g in given if g.get("question")}
    out = []
    for i, sub in enumerate(asked):
        out.append(by_text.get(normalize_answer(sub.question)) or (given[i] if i < len(given) else None))
    return out


def _is_false(value: Any) -> bool:
    return str(value).strip().lower() in ("false", "no", "incorrect", "0")


def score_response(instance: MedRGBInstance, response: str) -> dict[str, Any]:
    """Per-item facts the metrics pool: correctness, insufficiency, noise and error detection, sub-answers."""
    letters = "".join(k for k, _ in instance.question.options)
    obj = parse_json_response(response)
    choice = extract_choice(response, letters)
    irrelevant = {str(x) for x in (obj or {}).get("irrelevant_doc_ids", (obj or {}).get("irrelevant_doc_id", [])) or []}
    subs = _match_subs(instance.sub_qas, _sub_answers(obj))
    flagged = {
        str(g.get("doc_id", g.get("relevant_doc_id", "")))
        for g in _sub_answers(obj)
        if _is_false(g.get("factual_correctness", "true"))
    }
    return {
        "key": instance.key,
        "scenario": instance.scenario,
        "p_sig": instance.p_sig,
        "choice": choice,
        "gold": instance.question.answer,
        "correct": choice == instance.question.answer,
        "insufficient": choice == INSUFFICIENT,
        "noise_shown": len(instance.noise_ids),
        "noise_detected": len(set(instance.noise_ids) & irrelevant),
        "adversarial_shown": len(instance.adversarial_ids),
        "adversarial_detected": len(set(instance.adversarial_ids) & flagged),
        "sub_em": [exact_match(str(g.get("answer", "")), s.answer) if g else 0.0 for s, g in zip(instance.sub_qas, subs, strict=True)],
        "sub_f1": [token_f1(str(g.get("answer", "")), s.answer) if g else 0.0 for s, g in zip(instance.sub_qas, subs, strict=True)],
    }


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def aggregate(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Metrics per ``<scenario>/p<p_sig>`` group of scored items (None where a metric is undefined)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        groups.setdefault(f"{item['scenario']}/p{item['p_sig']}", []).append(item)
    out = {}
    for name in sorted(groups, key=lambda g: (g.split("/")[0], int(g.split("/p")[1]))):
        group = groups[name]
        em = [v for it in group for v in it["sub_em"]]
        f1 = [v for it in group for v in it["sub_f1"]]
        out[name] = {
            "n": len(group),
            "accuracy": _ratio(sum(it["correct"] for it in group), len(group)),
            "insufficient_rate": _ratio(sum(it["insufficient"] for it in group), len(group)),
            "noise_detection_rate": _ratio(sum(it["noise_detected"] for it in group), sum(it["noise_shown"] for it in group)),
            "factual_error_detection_rate": _ratio(
                sum(it["adversarial_detected"] for it in group), sum(it["adversarial_shown"] for it in group)
            ),
            "sub_exact_match": math.fsum(em) / len(em) if em else None,
            "sub_f1": math.fsum(f1) / len(f1) if f1 else None,
        }
    return out
