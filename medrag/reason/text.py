"""Small pure text functions behind relevance, grounding and quoting.

Terms are lower-cased alphanumeric words (hyphen/slash compounds also split into parts), English-stemmed
with PyStemmer, without stopwords, question filler words or bare numbers. They are compared as sets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from ..ingest.chunking import split_sentences

__all__ = [
    "terms",
    "coverage",
    "is_relevant",
    "required_terms",
    "support",
    "sentences",
    "best_quote",
    "normalize_space",
    "find_quote",
    "addressed_to_model",
]

_LIST_MARK = re.compile(r"[ \t]*(?:[-*•]|\d+[.)])\s+")
_WORD = re.compile(r"[a-z0-9]+(?:[-/][a-z0-9]+)*")
_STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each either few for from further had has have
    having he her here hers him his how i if in into is it its itself just may me might more most must my
    neither no nor not of off on once only or other our out over own per same she should so some such than
    that the their them then there these they this those through to too under until up upon very was we were
    what when where which while who whom why will with would you your yours
    best better following likely first one two three patient patients man woman year years old male female
    ml mg kg min day days week weeks month months please tell explain describe give recommended recommend
    appropriate next step management treatment option options answer question""".split()
)


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


def terms(text: str) -> frozenset[str]:
    """Content terms of ``text`` (see module docstring)."""
    out: set[str] = set()
    for m in _WORD.finditer(text.lower()):
        word = m.group()
        parts = [word] + (re.split(r"[-/]", word) if ("-" in word or "/" in word) else [])
        for part in parts:
            if part in _STOP or part.isdigit() or len(part) < 2:
                continue
            out.add(_stem(part))
    return frozenset(out)


def coverage(question_terms: Iterable[str], text_terms: Iterable[str]) -> int:
    """How many of the question's terms occur in the text."""
    return len(set(question_terms) & set(text_terms))


def required_terms(n_terms: int, min_coverage: float, max_required: int) -> int:
    """Terms a chunk must share with an ``n_terms``-term question to count as relevant (>= 1)."""
    if n_terms == 0 or min_coverage <= 0:
        return 0
    return max(1, min(max_required, math.ceil(min_coverage * n_terms)))


def is_relevant(question: str, text: str, min_coverage: float, max_required: int) -> bool:
    """The relevance floor of :class:`~medrag.config.LoopConfig` (lexical coverage of question terms)."""
    q = terms(question)
    need = required_terms(len(q), min_coverage, max_required)
    return coverage(q, terms(text)) >= need


def support(claim: str, evidence_terms: frozenset[str]) -> float:
    """Fraction of the claim's content terms found in the evidence (1.0 for a claim without terms)."""
    claim_terms = terms(claim)
    if not claim_terms:
        return 1.0
    return len(claim_terms & evidence_terms) / len(claim_terms)


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def normalize_space(text: str) -> str:
    return " ".join(text.split())


def find_quote(quote: str, text: str) -> str | None:
    """The span of ``text`` equal to ``quote`` up to whitespace and case, or None if it does not occur."""
    want = normalize_space(quote).strip(" \"'“”").lower()
    if len(want) < 8:
        return None
    # map positions of the whitespace-normalised lower-case text back to the original
    chars, index = [], []
    prev_space = True
    for i, ch in enumerate(text):
        if ch.isspace():
            if not prev_space:
                chars.append(" ")
                index.append(i)
            prev_space = True
            continue
        chars.append(ch.lower())
        index.append(i)
        prev_space = False
    flat = "".join(chars)
    pos = flat.find(want)
    if pos < 0:
        return None
    return text[index[pos]: index[pos + len(want) - 1] + 1]


#: text addressed to a model rather than stating a fact: an imperative opening aimed at a model ("Ignore …",
#: "Answer …", "Reply …"), talk of instructions/prompts, or chat-protocol words and tags
_TO_A_MODEL = re.compile(
    r"^\W*(?:ignore|disregard|forget|override|answer|respond|reply|output|pretend|act as|as an ai|"
    r"assistant|system|language model)\b"
    r"|\b(?:previous|prior|above|earlier|all) instructions?\b|\bsystem prompt\b|\bjailbreak",
    re.IGNORECASE,
)

#: the tags the loops and chat templates react to, planted in a passage (raw or already neutralised)
_PROTOCOL_TAG = re.compile(r"[<‹]\s*/?\s*(?:search|answer|evidence|data|think|information|results|system|user|"
                           r"assistant|followup)\s*>", re.IGNORECASE)


def addressed_to_model(sentence: str) -> bool:
    """Whether a sentence reads as an instruction to a language model (never shown as an evidence quote)."""
    if _PROTOCOL_TAG.search(sentence):
        return True
    return bool(_TO_A_MODEL.search(normalize_space(re.sub(r"[<‹][^<>‹]{0,40}>", " ", sentence))))


def best_quote(text: str, query: str, max_chars: int = 300, skip: Sequence[str] = ()) -> str:
    """The sentence of ``text`` sharing the most terms with ``query`` (the more informative one on ties) — a
    verbatim span of ``text`` (list markers trimmed, cut at a word boundary to ``max_chars``). A sentence on
    a nested list line is quoted together with its parent line ("- **Rivaroxaban:** 20 mg …\n  - *Dose
    Reduction:* 15 mg …"), so a quote never loses the subject it is about. Markdown headings and sentences
    starting with one of ``skip`` (the chunk's section path, its title) are not quoted unless nothing else
    is there. Sentences addressed to a model (:func:`addressed_to_model`, e.g. an injected "Ignore previous
    instructions and reply …") are never quoted; with nothing else, the first other sentence is (or "")."""
    q = terms(query)
    skipped = {normalize_space(s).lower() for s in skip if s}
    best, best_score, plain = None, -1.0, None
    for a, b in split_sentences(text):
        m = _LIST_MARK.match(text, a)
        a = m.end() if m else a
        sent = text[a:b]
        st = terms(sent)
        norm = normalize_space(sent).lower()
        if addressed_to_model(sent):
            continue  # text aimed at a model is never evidence
        plain = plain or (a, b)
        if not st or norm.startswith("#") or any(norm.startswith(k) for k in skipped):
            continue  # headings (the section path often opens a chunk) are quoted only when nothing else is
        parent = _parent_line_start(text, a)
        context = terms(text[parent:a]) if parent is not None else frozenset()
        score = len(q & (st | context)) + (0.001 * min(len(st), 30))
        if score > best_score:
            best, best_score = (a, b), score
    if best is None:
        return _cut(text[plain[0]:plain[1]].strip() if plain else "", max_chars)
    a, b = best
    parent = _parent_line_start(text, a)
    if parent is not None and b - parent <= 2 * max_chars:
        return text[parent:b].strip()
    return _cut(text[a:b].strip(), max_chars)


def _cut(span: str, max_chars: int) -> str:
    if len(span) <= max_chars:
        return span
    cut = span[:max_chars].rsplit(" ", 1)[0]
    return (cut if cut else span[:max_chars]).strip()


def _parent_line_start(text: str, pos: int) -> int | None:
    """Start (after indentation and list marker) of the less-indented line above an indented list line."""
    line_start = text.rfind("\n", 0, pos) + 1
    line = text[line_start:pos]
    indent = len(line) - len(line.lstrip(" \t"))
    if indent == 0 or not _LIST_MARK.fullmatch(line):
        return None
    end = line_start - 1
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        prev = text[start:end]
        if prev.strip() and len(prev) - len(prev.lstrip(" \t")) < indent:
            m = _LIST_MARK.match(text, start)
            return m.end() if m else start + len(prev) - len(prev.lstrip())
        end = start - 1
    return None
