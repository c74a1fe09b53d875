"""MedRGB (Ngo et al., 2024): its data model, loaders and scenario instances.

MedRGB adds to each MIRAGE question a set of *signal* documents (retrieved for it), sub-question/answer pairs
(one per signal document) and *counterfactual* documents (a signal document minimally edited to support a
wrong answer). A scenario instance shows the model ``n_docs`` documents (10 in the paper) of which ``p_sig``
percent are signal (p_sig in 0, 20, 40, 60, 80, 100):

* ``standard``    – the question with ``n_signal_standard`` (5) signal documents only;
* ``sufficiency`` – signal + noise documents (other questions' signal documents); the model may answer
  "insufficient information" and lists the documents it finds irrelevant;
* ``integration`` – signal + noise documents plus one sub-question per signal document shown (p_sig >= 20);
* ``robustness``  – all documents relevant, ``100 - p_sig`` percent of them counterfactual; the model answers
  the sub-questions, flags documents with factual errors and gives the correct fact.

Two input layouts are read. The repository's (``ngotrnghia1811/MedRGB``): a questions file
(``questions.jsonl`` / ``qa.jsonl``: ``question_id``, ``question``, ``options``, ``answer``) beside
``signal_docs.json``, ``subqa_pairs.json``, ``counterfactual_docs.json`` (each ``{question_id: [...]}``). Or a
bundled JSONL with one question per line carrying its documents (as the Hugging Face release bundles them);
field names are matched through the aliases below. Sampling is seeded per (seed, scenario, p_sig, question),
so an instance never depends on which other instances were built.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataNotFoundError, InputError
from .data import read_jsonl

__all__ = [
    "SCENARIOS",
    "SIGNAL_PERCENTAGES",
    "INSUFFICIENT",
    "MEDRGB_HUB",
    "Doc",
    "SubQA",
    "Counterfactual",
    "MedRGBQuestion",
    "MedRGBInstance",
    "load_medrgb",
    "question_from_record",
    "build_instances",
    "build_instance",
]

SCENARIOS = ("standard", "sufficiency", "integration", "robustness")
SIGNAL_PERCENTAGES = (0, 20, 40, 60, 80, 100)
INSUFFICIENT = "insufficient information"
MEDRGB_HUB = "https://huggingface.co/datasets/ngotrnghia1811/MedRGB"
_LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Doc:
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class SubQA:
    """A sub-question tied to one signal document; ``answer`` is the correct (extracted) answer."""

    doc_id: str
    question: str
    answer: str


@dataclass(frozen=True)
class Counterfactual:
    """A signal document edited to support ``wrong_answer``; shown under the original's id."""

    original_id: str
    text: str
    wrong_answer: str = ""


@dataclass(frozen=True)
class MedRGBQuestion:
    question_id: str
    question: str
    options: tuple[tuple[str, str], ...]
    answer: str  # option letter
    signal: tuple[Doc, ...] = ()
    noise: tuple[Doc, ...] = ()  # per-question noise pool when the data provides one
    sub_qas: tuple[SubQA, ...] = ()
    counterfactuals: tuple[Counterfactual, ...] = ()
    dataset: str = ""


@dataclass(frozen=True)
class MedRGBInstance:
    """What the model is shown for one (scenario, p_sig, question), with the ground truth to score it."""

    scenario: str
    p_sig: int
    question: MedRGBQuestion
    documents: tuple[Doc, ...]
    signal_ids: tuple[str, ...] = ()
    noise_ids: tuple[str, ...] = ()
    adversarial_ids: tuple[str, ...] = ()
    sub_qas: tuple[SubQA, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.scenario}/p{self.p_sig}/{self.question.question_id}"


# --------------------------------------------------------------------------------------------- records

_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("question_id", "id", "qid", "_id"),
    "question": ("question", "query", "QUESTION"),
    "options": ("options", "choices", "answer_options"),
    "answer": ("answer", "answer_idx", "label", "correct_answer", "final_decision"),
    "signal": ("signal_docs", "signal_documents", "signal", "documents", "docs"),
    "noise": ("noise_docs", "noise_documents", "noise"),
    "sub_qas": ("sub_qas", "subqa_pairs", "sub_questions", "subqa", "sub_qa"),
    "counterfactuals": ("counterfactual_docs", "counterfactual_documents", "counterfactuals", "adversarial_docs"),
}


def _get(record: Mapping[str, Any], what: str, default: Any = None) -> Any:
    for name in _ALIASES[what]:
        if name in record and record[name] is not None:
            return record[name]
    return default


def _options(raw: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    if isinstance(raw, Mapping):
        return tuple((str(k).strip().upper(), str(v)) for k, v in sorted(raw.items()))
    if isinstance(raw, Sequence):
        return tuple((_LETTERS[i], str(v)) for i, v in enumerate(raw))
    raise InputError(f"options must be a mapping or a list, got {type(raw).__name__}")


def _answer_letter(answer: Any, options: tuple[tuple[str, str], ...], qid: str) -> str:
    text = str(answer).strip()
    letters = {k for k, _ in options}
    if text.upper() in letters:
        return text.upper()
    for letter, option in options:
        if option.strip().lower() == text.lower():
            return letter
    raise InputError(f"question {qid}: answer {answer!r} is neither an option letter nor an option text")


def _doc(raw: Any, fallback_id: str) -> Doc:
    if isinstance(raw, str):
        return Doc(fallback_id, "", raw)
    if not isinstance(raw, Mapping):
        raise InputError(f"a document must be an object or a string, got {type(raw).__name__}")
    text = raw.get("content", raw.get("text", raw.get("contents", "")))
    return Doc(str(raw.get("id", raw.get("doc_id", fallback_id))), str(raw.get("title", "")), str(text))


def _docs(raw: Any, qid: str, tag: str) -> tuple[Doc, ...]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    return tuple(_doc(d, f"{qid}-{tag}{i}") for i, d in enumerate(raw or ()))


def _sub_qas(raw: Any) -> tuple[SubQA, ...]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    if isinstance(raw, Mapping):  # {"doc_id": {"question":..,"answer":..}} form
        raw = [{"doc_id": k, **v} for k, v in raw.items()]
    return tuple(
        SubQA(str(s.get("doc_id", s.get("id", ""))), str(s["question"]), str(s.get("answer", "")))
        for s in raw or ()
    )


def _counterfactuals(raw: Any) -> tuple[Counterfactual, ...]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    out = []
    for c in raw or ():
        text = c.get("edited_document", c.get("content", c.get("text", "")))
        original = c.get("original_id", c.get("doc_id", c.get("id", "")))
        out.append(Counterfactual(str(original), str(text), str(c.get("new_answer", ""))))
    return tuple(out)


def question_from_record(record: Mapping[str, Any], dataset: str = "") -> MedRGBQuestion:
    """A MedRGBQuestion from one bundled record (field names matched through aliases)."""
    qid = _get(record, "id")
    question = _get(record, "question")
    if qid is None or question is None:
        raise InputError(f"a MedRGB record needs a question id and a question (keys: {', '.join(sorted(record))})")
    qid = str(qid)
    options = _options(_get(record, "options", {"A": "yes", "B": "no"}))
    return MedRGBQuestion(
        question_id=qid,
        question=str(question),
        options=options,
        answer=_answer_letter(_get(record, "answer", ""), options, qid),
        signal=_docs(_get(record, "signal"), qid, "s"),
        noise=_docs(_get(record, "noise"), qid, "n"),
        sub_qas=_sub_qas(_get(record, "sub_qas")),
        counterfactuals=_counterfactuals(_get(record, "counterfactuals")),
        dataset=str(record.get("dataset", dataset)),
    )


def _json_map(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object mapping question ids to lists")
    return {str(k): v for k, v in data.items()}


def load_medrgb(path: str | Path) -> list[MedRGBQuestion]:
    """MedRGB questions from a bundled ``.jsonl`` file or a repository-layout folder."""
    path = Path(path)
    if path.is_file():
        return [question_from_record(r) for r in read_jsonl(path)]
    if not path.is_dir():
        raise DataNotFoundError(f"{path}: no MedRGB data here; get it from {MEDRGB_HUB} (or pass --from-hub)")
    questions = next((path / n for n in ("questions.jsonl", "qa.jsonl", "medrgb.jsonl") if (path / n).is_file()), None)
    if questions is None:
        raise DataNotFoundError(
            f"{path}: no questions.jsonl (MedRGB layout: questions.jsonl + signal_docs.json, subqa_pairs.json, "
            f"counterfactual_docs.json); get the data from {MEDRGB_HUB}"
        )
    bench = path / "benchmark" if (path / "benchmark").is_dir() else path
    extra = {
        "signal_docs": _json_map(bench / "signal_docs.json"),
        "subqa_pairs": _json_map(bench / "subqa_pairs.json"),
        "counterfactual_docs": _json_map(bench / "counterfactual_docs.json"),
    }
    out = []
    for record in read_jsonl(questions):
        qid = str(_get(record, "id"))
        merged = dict(record)
        for name, table in extra.items():
            if qid in table:
                merged[name] = table[qid]
        out.append(question_from_record(merged))
    return out


# ------------------------------------------------------------------------------------------- instances


def _sample(rng: random.Random, items: Sequence[Any], n: int) -> list[Any]:
    return rng.sample(list(items), min(max(n, 0), len(items)))


def _noise_pool(question: MedRGBQuestion, pool: Sequence[Doc]) -> list[Doc]:
    if question.noise:
        return list(question.noise)
    own = {d.doc_id for d in question.signal}
    return [d for d in pool if d.doc_id not in own]


def build_instance(question: MedRGBQuestion, scenario: str, p_sig: int, *, noise_pool: Sequence[Doc] = (),
                   n_docs: int = 10, n_signal_standard: int = 5, seed: int = 42) -> MedRGBInstance:
    """One deterministic instance (see the module docstring for what each scenario shows)."""
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown MedRGB scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    rng = random.Random(f"{seed}|{scenario}|{p_sig}|{question.question_id}")
    if scenario == "standard":
        docs = _sample(rng, question.signal, n_signal_standard)
        return MedRGBInstance(scenario, p_sig, question, tuple(docs), signal_ids=tuple(d.doc_id for d in docs))
    n_signal = round(n_docs * p_sig / 100)
    if scenario == "robustness":
        return _robustness(question, p_sig, n_docs, n_signal, rng)
    signal = _sample(rng, question.signal, n_signal)
    noise = _sample(rng, _noise_pool(question, noise_pool), n_docs - len(signal))
    docs = signal + noise
    rng.shuffle(docs)
    signal_ids = {d.doc_id for d in signal}
    subs = tuple(s for s in question.sub_qas if s.doc_id in signal_ids) if scenario == "integration" else ()
    return MedRGBInstance(
        scenario, p_sig, question, tuple(docs),
        signal_ids=tuple(d.doc_id for d in signal), noise_ids=tuple(d.doc_id for d in noise), sub_qas=subs,
    )


def _robustness(question: MedRGBQuestion, p_sig: int, n_docs: int, n_correct: int,
                rng: random.Random) -> MedRGBInstance:
    """Counterfactual documents are drawn first; the correct ones come from the remaining originals, so a
    source document is shown at most once (original or edited), always under its original id."""
    adversarial = _sample(rng, question.counterfactuals, n_docs - n_correct)
    edited = {c.original_id for c in adversarial}
    titles = {d.doc_id: d.title for d in question.signal}
    correct = _sample(rng, [d for d in question.signal if d.doc_id not in edited], n_correct)
    docs = correct + [Doc(c.original_id, titles.get(c.original_id, ""), c.text) for c in adversarial]
    rng.shuffle(docs)
    shown = {d.doc_id for d in docs}
    return MedRGBInstance(
        "robustness", p_sig, question, tuple(docs),
        signal_ids=tuple(d.doc_id for d in correct), adversarial_ids=tuple(sorted(edited)),
        sub_qas=tuple(s for s in question.sub_qas if s.doc_id in shown),
    )


def build_instances(questions: Iterable[MedRGBQuestion], scenario: str, p_sigs: Sequence[int] = SIGNAL_PERCENTAGES,
                    *, n_docs: int = 10, n_signal_standard: int = 5, seed: int = 42,
                    noise_pool: Sequence[Doc] | None = None) -> list[MedRGBInstance]:
    """Instances of ``scenario`` for every question and signal percentage (standard: one per question;
    integration skips p_sig = 0, which has no signal document to ask about). Noise documents come from
    ``noise_pool`` (default: all given questions' signal documents)."""
    questions = list(questions)
    bad = [p for p in p_sigs if p not in SIGNAL_PERCENTAGES]
    if bad:
        raise ConfigError(f"p_sig must be among {SIGNAL_PERCENTAGES}, got {bad}")
    pool = list(noise_pool) if noise_pool is not None else [d for q in questions for d in q.signal]
    if scenario == "standard":
        p_sigs = (100,)
    elif scenario == "integration":
        p_sigs = tuple(p for p in p_sigs if p >= 20)
    return [
        build_instance(q, scenario, p, noise_pool=pool, n_docs=n_docs, n_signal_standard=n_signal_standard, seed=seed)
        for p in p_sigs
        for q in questions
    ]
