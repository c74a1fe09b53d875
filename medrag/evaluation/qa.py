"""Multiple-choice medical QA: MIRAGE-style items and PubMedQA-L, prompts, answer parsing and accuracy.

Inputs:

* MIRAGE's ``benchmark.json`` (``{dataset: {id: {question, options: {A: ..}, answer: "A"}}}``), or a JSON list /
  JSONL of ``{question, options, answer}`` items (``id`` optional);
* PubMedQA-L (``ori_pqal.json`` / ``pqal_dev.json``: ``{pmid: {QUESTION, CONTEXTS, final_decision, ..}}``),
  whose items become options yes / no / maybe with the abstract as context.

Items whose options are exactly yes / no (/ maybe) are answered with the word; others with the option letter.
Accuracy comes with its binomial std (sqrt(p(1-p)/n)), a bootstrap std, and the majority-class baseline
(always answering the most frequent gold label) for comparison.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataNotFoundError, InputError
from ..llm.thinking import split_think
from .data import read_json, read_jsonl

__all__ = [
    "QAItem",
    "load_pubmedqa",
    "load_mirage",
    "load_qa",
    "is_word_answer",
    "completion_prompt",
    "chat_prompt",
    "parse_answer",
    "visible_answer",
    "accuracy_summary",
    "baselines",
    "PUBMEDQA_URL",
    "MIRAGE_URL",
    "pubmedqa_as_beir",
]

PUBMEDQA_URL = "https://github.com/pubmedqa/pubmedqa (data/ori_pqal.json)"
MIRAGE_URL = "https://github.com/Teddy-XiongGZ/MIRAGE (benchmark.json)"
_YNM = ("yes", "no", "maybe")


@dataclass(frozen=True)
class QAItem:
    item_id: str
    question: str
    options: tuple[tuple[str, str], ...]
    answer: str  # gold option letter
    context: str = ""
    dataset: str = ""

    @property
    def gold_text(self) -> str:
        return dict(self.options)[self.answer]


def is_word_answer(options: Sequence[tuple[str, str]]) -> bool:
    """True when the options are yes/no(/maybe): the answer is then the word, not the letter."""
    words = [v.strip().lower() for _, v in options]
    return words in (["yes", "no"], ["yes", "no", "maybe"])


def _ynm_options() -> tuple[tuple[str, str], ...]:
    return (("A", "yes"), ("B", "no"), ("C", "maybe"))


def load_pubmedqa(path: str | Path) -> list[QAItem]:
    """PubMedQA-L items (``{pmid: {QUESTION, CONTEXTS, final_decision}}``), in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no PubMedQA file; get PubMedQA-L from {PUBMEDQA_URL}")
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object keyed by PMID")
    letter = {"yes": "A", "no": "B", "maybe": "C"}
    items = []
    for pmid, rec in data.items():
        if not isinstance(rec, dict):
            raise InputError(f"{path}: item {pmid} is not a JSON object")
        decision = str(rec.get("final_decision", "")).strip().lower()
        if decision not in letter or "QUESTION" not in rec:
            raise InputError(f"{path}: item {pmid} lacks QUESTION or a yes/no/maybe final_decision")
        context = "\n".join(str(c) for c in rec.get("CONTEXTS", []))
        items.append(QAItem(str(pmid), str(rec["QUESTION"]), _ynm_options(), letter[decision], context, "pubmedqa"))
    return items


def _options(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if isinstance(raw, Mapping):
        return tuple((str(k).strip().upper(), str(v)) for k, v in sorted(raw.items()))
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        return tuple((chr(ord("A") + i), str(v)) for i, v in enumerate(raw))
    raise InputError(f"{where}: options must be a mapping or a list")


def _item(rec: Mapping[str, Any], item_id: str, dataset: str, where: str) -> QAItem:
    if not isinstance(rec, Mapping):
        raise InputError(f"{where}: item {item_id} is not a JSON object")
    if "question" not in rec or "options" not in rec or "answer" not in rec:
        raise InputError(f"{where}: item {item_id} needs question, options and answer")
    options = _options(rec["options"], where)
    answer = str(rec["answer"]).strip()
    letters = dict(options)
    if answer.upper() not in letters:
        match = [k for k, v in options if v.strip().lower() == answer.lower()]
        if not match:
            raise InputError(f"{where}: item {item_id}: answer {answer!r} is not one of its options")
        answer = match[0]
    context = rec.get("context", rec.get("contexts", ""))
    if isinstance(context, list):
        context = "\n".join(map(str, context))
    return QAItem(item_id, str(rec["question"]), options, answer.upper(), str(context), dataset)


def load_mirage(path: str | Path, datasets: Sequence[str] = ()) -> list[QAItem]:
    """MIRAGE-style items from ``benchmark.json`` (optionally only ``datasets``), a JSON list or a JSONL."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no MIRAGE-style file; get MIRAGE's benchmark.json from {MIRAGE_URL}")
    if path.suffix == ".jsonl":
        return [_item(r, str(r.get("id", i)), str(r.get("dataset", "")), str(path)) for i, r in enumerate(read_jsonl(path))]
    data = read_json(path)
    if isinstance(data, list) and not all(isinstance(r, dict) for r in data):
        raise InputError(f"{path}: every item of the list must be a JSON object")
    if isinstance(data, dict) and not all(isinstance(v, dict) for v in data.values()):
        raise InputError(f"{path}: expected MIRAGE's {{dataset: {{id: item}}}}: a data set is not an object")
    if isinstance(data, list):
        return [_item(r, str(r.get("id", i)), str(r.get("dataset", "")), str(path)) for i, r in enumerate(data)]
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected MIRAGE's {{dataset: {{id: item}}}}, a list, or JSONL")
    unknown = sorted(set(datasets) - set(data))
    if unknown:
        raise DataNotFoundError(f"{path}: no data set {', '.join(unknown)} (has: {', '.join(sorted(data))})")
    return [
        _item(rec, str(qid), name, str(path))
        for name, items in data.items()
        if not datasets or name in datasets
        for qid, rec in items.items()
    ]


def load_qa(benchmark: str, path: str | Path, datasets: Sequence[str] = ()) -> list[QAItem]:
    if benchmark == "pubmedqa":
        path = Path(path)
        if path.is_dir():
            found = [path / n for n in ("pqal_dev.json", "ori_pqal.json", "test_set.json") if (path / n).is_file()]
            if not found:
                raise DataNotFoundError(f"{path}: no pqal_dev.json / ori_pqal.json; get PubMedQA-L from {PUBMEDQA_URL}")
            path = found[0]
        return load_pubmedqa(path)
    return load_mirage(path, datasets)


# ---------------------------------------------------------------------------------------------- prompts

#: Hand-written worked examples for few-shot completion prompts (never benchmark items).
_SHOTS_WORD = (
    ("Adults who took daily low-dose aspirin for five years had fewer colorectal adenomas than those on "
     "placebo (relative risk 0.79, 95% CI 0.68-0.92).", "Does daily low-dose aspirin reduce colorectal adenomas?", "yes"),
    ("Among 1,204 children, vitamin C supplements did not change the number or length of colds compared with "
     "placebo.", "Does vitamin C prevent colds in children?", "no"),
    ("Outcomes after keyhole surgery improved in two centres but worsened in a third; the pooled difference "
     "was not significant and the trials were small.", "Is keyhole surgery better than open surgery for this repair?", "maybe"),
)
_SHOTS_LETTER = (
    ("Which vitamin deficiency causes scurvy?", (("A", "Vitamin A"), ("B", "Vitamin B12"), ("C", "Vitamin C"), ("D", "Vitamin D")), "C"),
    ("Which organ secretes insulin?", (("A", "Liver"), ("B", "Pancreas"), ("C", "Kidney"), ("D", "Spleen")), "B"),
    ("What is the normal adult resting heart rate range in beats per minute?", (("A", "60-100"), ("B", "20-40"), ("C", "120-160"), ("D", "180-220")), "A"),
)


def _block(item: QAItem, context: str, answer: str | None) -> str:
    parts = []
    if context:
        parts.append(f"Context: {context}")
    parts.append(f"Question: {item.question}")
    if not is_word_answer(item.options):
        parts.extend(f"{k}. {v}" for k, v in item.options)
    parts.append("Answer:" + (f" {answer}" if answer else ""))
    return "\n".join(parts)


def _instruction(item: QAItem) -> str:
    if is_word_answer(item.options):
        words = " or ".join(v for _, v in item.options)
        return f"Answer each medical research question with {words}, based on the context."
    return "Answer each medical question with the letter of the correct option."


def completion_prompt(item: QAItem, context: str = "", shots: int = 3) -> str:
    """Instruction, ``shots`` worked examples, then the item ending in ``Answer:``."""
    blocks = [_instruction(item)]
    if is_word_answer(item.options):
        allowed = {v.lower() for _, v in item.options}
        for ctx, q, a in [s for s in _SHOTS_WORD if s[2] in allowed][:shots]:
            blocks.append(_block(QAItem("shot", q, item.options, "A"), ctx if context else "", a))
    else:
        for q, opts, a in _SHOTS_LETTER[:shots]:
            blocks.append(_block(QAItem("shot", q, opts, a), "", a))
    blocks.append(_block(item, context, None))
    return "\n\n".join(blocks)


def chat_prompt(item: QAItem, context: str = "") -> list[dict[str, str]]:
    """One user message: instruction, the item, and how to reply."""
    reply = "Reply with the single word." if is_word_answer(item.options) else "Reply with the option letter only."
    return [{"role": "user", "content": f"{_instruction(item)} {reply}\n\n{_block(item, context, None)}"}]


def visible_answer(text: str, think_open: str | None = "<think>", think_close: str | None = "</think>") -> str:
    """``text`` without its thinking: closed blocks removed, an UNCLOSED block (a generation cut off while
    thinking) dropped with everything after its open tag, and a template-opened block (a close tag with no
    open tag before it) dropped up to that close tag. Nothing a model thought can become its answer."""
    if not think_open or not think_close:
        return text.strip()
    return split_think(text, think_open, think_close)[1]


def parse_answer(text: str, options: Sequence[tuple[str, str]], *, think_open: str | None = "<think>",
                 think_close: str | None = "</think>") -> str | None:
    """The option letter a generation names, read from its visible answer only (thinking — closed or not —
    is removed first, see :func:`visible_answer`): its first yes/no/maybe word for word-answer items, else the
    first standalone option letter (``B``, ``(B)``, ``B.``) or an option's full text; None otherwise."""
    clean = visible_answer(text, think_open, think_close)
    if is_word_answer(options):
        by_word = {v.strip().lower(): k for k, v in options}
        m = re.search(r"\b(yes|no|maybe)\b", clean.lower())
        return by_word.get(m.group(1)) if m else None
    letters = "".join(k for k, _ in options)
    m = re.search(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])", clean)
    if m:
        return m.group(1)
    lowered = clean.lower()
    hits = [k for k, v in options if v.strip() and v.strip().lower() in lowered]
    return hits[0] if len(hits) == 1 else None


# ---------------------------------------------------------------------------------------------- scoring


def accuracy_summary(golds: Sequence[str], predictions: Sequence[str | None], *, bootstrap: int = 1000,
                     seed: int = 0, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Accuracy (an unparsed answer, ``None``, counts as wrong), binomial and bootstrap std, the bootstrap's
    95% percentile interval, the unparsed count and rate, the majority-class baseline and the distributions."""
    if len(golds) != len(predictions):
        raise InputError("golds and predictions differ in length")
    n = len(golds)
    correct = [int(g == p) for g, p in zip(golds, predictions, strict=True)]
    acc = sum(correct) / n if n else 0.0
    majority_label, majority_count = Counter(golds).most_common(1)[0] if n else ("", 0)
    name = dict(labels or {})
    means = _bootstrap_means(correct, bootstrap, seed)
    unparsed = sum(p is None for p in predictions)
    return {
        "n": n,
        "accuracy": acc,
        "std_binomial": math.sqrt(acc * (1 - acc) / n) if n else 0.0,
        "std_bootstrap": _std(means),
        "ci95_bootstrap": _percentile_interval(means, 0.95),
        "unparsed": unparsed,
        "unparsed_rate": unparsed / n if n else 0.0,
        "majority_label": name.get(majority_label, majority_label),
        "majority_baseline": majority_count / n if n else 0.0,
        "gold_distribution": _dist(golds, name),
        "prediction_distribution": _dist(["unparsed" if p is None else p for p in predictions], name),
    }


def baselines(items: Sequence[QAItem]) -> dict[str, Any]:
    """Chance-level references for ``items``: ``random`` (expected accuracy of a uniform random option,
    the mean of 1/#options) and ``majority`` (always answering the most frequent gold letter), with ``n``."""
    n = len(items)
    if not n:
        return {"n": 0, "random": 0.0, "majority": 0.0, "majority_label": ""}
    label, count = Counter(it.answer for it in items).most_common(1)[0]
    return {"n": n, "random": math.fsum(1 / len(it.options) for it in items) / n, "majority": count / n,
            "majority_label": label}


def _dist(values: Iterable[str], names: Mapping[str, str]) -> dict[str, int]:
    return {names.get(k, k): v for k, v in sorted(Counter(values).items())}


def _bootstrap_means(correct: Sequence[int], rounds: int, seed: int) -> list[float]:
    if rounds <= 0 or not correct:
        return []
    rng = random.Random(seed)
    n = len(correct)
    return [sum(correct[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds)]


def _std(means: Sequence[float]) -> float | None:
    if not means:
        return None
    if len(means) == 1:
        return 0.0
    mu = math.fsum(means) / len(means)
    return math.sqrt(math.fsum((m - mu) ** 2 for m in means) / (len(means) - 1))


def _percentile_interval(means: Sequence[float], level: float) -> list[float] | None:
    """The central ``level`` interval of the bootstrap means (nearest-rank percentiles)."""
    if not means:
        return None
    ordered = sorted(means)
    tail = (1 - level) / 2
    lo = ordered[max(0, math.ceil(tail * len(ordered)) - 1)]
    hi = ordered[min(len(ordered) - 1, math.ceil((1 - tail) * len(ordered)) - 1)]
    return [lo, hi]


def pubmedqa_as_beir(items: Sequence[QAItem], out: str | Path) -> Path:
    """Write PubMedQA items as a BEIR retrieval folder: each question must retrieve its own abstract.

    Corpus ids are ``pmid<PMID>`` (distinct from the query ids, the PMIDs), qrels grade 1; ``out`` is returned.
    """
    out = Path(out)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for it in items:
            fh.write(json.dumps({"_id": f"pmid{it.item_id}", "title": "", "text": it.context}, ensure_ascii=False) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as fh:
        for it in items:
            fh.write(json.dumps({"_id": it.item_id, "text": it.question}, ensure_ascii=False) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{it.item_id}\tpmid{it.item_id}\t1" for it in items]
    (out / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
