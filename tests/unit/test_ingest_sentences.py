"""``split_sentences`` and ``clean_text`` (the parsers' whitespace cleaning) equal their straightforward definitions.

The library versions are tuned (a single regex pass with the closed word captured; C-level string tests);
these tests hold them to the plain implementations they replaced, on adversarial random text.
"""

from __future__ import annotations

import random
import re

import pytest

from medrag.ingest.chunking import _add_span, split_sentences  # _add_span: unchanged, shared by both
from medrag.ingest.records import clean_text

_REF_END = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_REF_LINE = re.compile(r"[^\n]+")
_REF_ABBREV = frozenset(
    "e.g i.e vs al fig figs no nos dr mr mrs ms prof approx ca cf etc st resp ref refs eq eqs vol "
    "inc ltd co jr sr dept univ min max mg ml kg mm cm sp spp var".split()
)


def _reference_split(text: str) -> list[tuple[int, int]]:
    """The original line-by-line implementation (the last word re-split from each candidate sentence)."""
    spans: list[tuple[int, int]] = []
    for line in _REF_LINE.finditer(text):
        start = line.start()
        for m in _REF_END.finditer(line.group()):
            end = line.start() + m.start() + 1
            word = text[start:end].rsplit(None, 1)[-1].rstrip(".").lower() if text[start:end].strip() else ""
            if word in _REF_ABBREV or (len(word) == 1 and word.isalpha()):
                continue
            _add_span(text, start, line.start() + m.end(), spans)
            start = line.start() + m.end()
        _add_span(text, start, line.end(), spans)
    return spans


_TOKENS = [
    "a", "I", "e.g.", "i.e.", "Fig.", "al.", "etc.", "vs.", "No.", "mg.", "x.", "3.5", "U.S.", "...", "?!",
    "word", "Word", "B", "9", "(", "[", ")", "]", '"', "'", ".", "!", "?", ".)", '."', ".]", "é", "İ.", "ß.",
    "\u00c9t.", "(A", "[1]", '"The', "'s",
]
_SPACES = [" ", " ", " ", "  ", "\n", "\n\n", "\t", "\r", "\xa0", "\u2003", "\x1c", "\x85", " \n ", ""]


def _random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 30)):
        parts.append(rng.choice(_TOKENS))
        parts.append(rng.choice(_SPACES))
    return "".join(parts)


@pytest.mark.parametrize("seed", range(4))
def test_split_sentences_equals_the_reference_on_random_text(seed):
    rng = random.Random(seed)
    for _ in range(5000):
        text = _random_text(rng)
        assert split_sentences(text) == _reference_split(text), repr(text)


def test_split_sentences_equals_the_reference_on_prose():
    text = (
        "BACKGROUND: Aspirin (e.g. 81 mg.) was given. Results were good! Were they? \"Yes.\" (See Fig. 2.) "
        "Smith et al. Found it.\n\n  METHODS: A. B. Jones et al. 2019. [Ref. 3] The end.  \n\t \nLast line"
    )
    assert split_sentences(text) == _reference_split(text)


@pytest.mark.parametrize("seed", range(2))
def test_clean_text_equals_collapsing_every_whitespace_run(seed):
    rng = random.Random(seed)
    for _ in range(5000):
        text = _random_text(rng) + rng.choice(["", "\u200b", "\x00", "\u2028", "\x0b\x0c", "\xa0", "  "])
        assert clean_text(text) == " ".join(text.split()), repr(text)
    assert clean_text(None) == clean_text("") == ""
