"""Exact BERT WordPiece token counts without running the tokenizer over whole texts.

A BERT tokenizer (``BertNormalizer`` → ``BertPreTokenizer`` → ``WordPiece``) never lets a token cross
whitespace: the normaliser works character by character, the pre-tokeniser cuts at whitespace and
punctuation, and WordPiece splits each pre-token on its own. So the token count of a text is the sum of the
counts of its whitespace-separated words, and each distinct word needs counting once.

``WordCounter.count`` splits with ``str.split()`` and sums cached per-word counts (two C-level passes over
the text; a cache miss is filled inside the sum); ``count_spans`` counts a section's sentences that way with
the checks below run once, on the section. A word seen for the first time is cut at BERT's punctuation into
pieces, and each distinct piece is counted once: ASCII pieces (lower-cased as the normaliser would) by the
tokenizer's own WordPiece model (``Tokenizer.model.tokenize``), other pieces by encoding them with the whole
tokenizer.

Each non-ASCII character is classified once by asking the tokenizer's own normaliser and pre-tokeniser how
it treats it between two letters (kept in the word, a cut such as punctuation or a CJK ideograph, or
whitespace), so the split follows the tokenizer's Unicode tables, not Python's. Text the split would get
wrong is declined (``count`` returns None; the caller encodes it): a special token's literal (``[CLS]``…),
an ASCII control character, or a character whose treatment disagrees with Python's whitespace (``\x85``,
deleted by the normaliser, is whitespace to ``str.split``).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["WordCounter", "word_counter_for"]

_PUNCT = r"!-/:-@\[-`{-~"  # ASCII punctuation: BERT cuts at (and counts as one token) every such character
_PLAIN = re.compile(rf"[^ \t\n\r{_PUNCT}]+|[{_PUNCT}]")  # a word's pieces, when it holds no Unicode punctuation
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # deleted by clean_text (\t\n\r are spaces)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_CACHE_ENTRIES = 1_000_000  # per cache; cleared when full (memory stays bounded on any input)
_BAD, _SPACE, _CUT, _WORD = range(4)


class WordCounter:
    """Exact token counts of a BERT WordPiece ``tokenizers.Tokenizer`` (see the module docstring).

    ``spec`` is the tokenizer's JSON (``json.loads(tok.to_str())``). Not thread-safe for writers: each
    process/chunker fills its own caches; concurrent readers only ever add entries.
    """

    def __init__(self, tok: Any, spec: dict[str, Any]) -> None:
        norm = spec.get("normalizer") or {}
        specials = [t["content"] for t in spec.get("added_tokens", []) if t.get("content")]
        self._tok = tok
        self._specials = re.compile("|".join(map(re.escape, specials))) if specials else None
        self._special_starts = tuple(sorted({t[0] for t in specials}))  # a text without them holds no special
        self._model = tok.model  # the tokenizer's own WordPiece model: counts ASCII pieces (no normaliser needed)
        self._lower = bool(norm.get("lowercase", True))
        self._words = _Counts(self._count_word)  # whitespace-separated word -> tokens
        self._pieces = _Counts(self._count_piece)  # pre-token (run between punctuation, or one mark) -> tokens
        self._kinds: dict[str, int] = {}
        self._patterns: dict[str, re.Pattern[str]] = {}

    def count(self, text: str) -> int | None:
        """Tokens of ``text`` (no special tokens added), or None when the text is left to the tokenizer."""
        if self._declines(text):
            return None
        cache = self._words
        if len(cache) > _CACHE_ENTRIES:
            cache.clear()
        # Python's whitespace == BERT's once control characters are excluded; a new word is counted (and
        # cached) by ``_Counts.__missing__`` inside the one C-level sum
        return sum(map(cache.__getitem__, text.split()))

    def count_spans(self, text: str, spans: Sequence[tuple[int, int]]) -> list[int] | None:
        """``[count(text[a:b]) for a, b in spans]`` with the checks run once, on ``text``; None when ``text``
        is declined (a span of it may still be countable: ask ``count``).

        Every check is one a substring passes when the whole text does (a special token's literal, a control
        or declined character found in a span is found in the text), so the counts are ``count``'s."""
        if self._declines(text):
            return None
        cache = self._words
        if len(cache) > _CACHE_ENTRIES:
            cache.clear()
        get = cache.__getitem__
        return [sum(map(get, text[a:b].split())) for a, b in spans]

    def _declines(self, text: str) -> bool:
        """Whether ``text`` is left to the tokenizer (see the module docstring)."""
        if self._specials is not None and any(map(text.__contains__, self._special_starts)):
            if self._specials.search(text):
                return True
        # a printable text holds no control character (the C-level check spares most texts the regex scan)
        if not text.isprintable() and _ASCII_CONTROL.search(text):
            return True
        return not text.isascii() and not self._countable(text)

    def _countable(self, text: str) -> bool:
        kinds = self._kinds
        for ch in set(_NON_ASCII.findall(text)):
            kind = kinds.get(ch)
            if kind is None:
                kind = kinds[ch] = self._probe(ch)
            if kind == _BAD:
                return False
        return True

    def _probe(self, ch: str) -> int:
        """How the tokenizer's own normaliser and pre-tokeniser treat ``ch`` between two letters: inside the
        word (kept, decomposed or deleted), a cut (punctuation, CJK), or whitespace. Declined (_BAD) where
        that disagrees with Python's whitespace (``str.split``) or fits none of these."""
        pieces = [p for p, _ in self._tok.pre_tokenizer.pre_tokenize_str(self._tok.normalizer.normalize_str(f"a{ch}b"))]
        if ch.isspace():
            return _SPACE if pieces == ["a", "b"] else _BAD
        if len(pieces) == 1:
            return _WORD
        if len(pieces) >= 3 and pieces[0] == "a" and pieces[-1] == "b":
            return _CUT
        return _BAD

    def ascii_as_assumed(self) -> bool:
        """Whether the tokenizer treats ASCII as this class assumes: letters and digits kept (lowercased when
        the normaliser lowercases), punctuation cut, space/tab/newline/return whitespace."""
        expected = {**{c: _WORD for c in string.ascii_letters + string.digits},
                    **{c: _CUT for c in string.punctuation}, **{c: _SPACE for c in " \t\n\r"}}
        if any(self._probe(c) != kind for c, kind in expected.items()):
            return False
        alnum = string.ascii_letters + string.digits
        return self._tok.normalizer.normalize_str(alnum) == (alnum.lower() if self._lower else alnum)

    def _count_word(self, word: str) -> int:
        cache = self._pieces
        if len(cache) > _CACHE_ENTRIES:
            cache.clear()
        if word.isalnum() and word.isascii():  # ASCII letters and digits only: the word is its one piece
            return cache[word]
        return sum(map(cache.__getitem__, (_PLAIN if word.isascii() else self._pattern(word)).findall(word)))

    def _count_piece(self, piece: str) -> int:
        if piece.isascii():
            return len(self._model.tokenize(piece.lower() if self._lower else piece))
        return len(self._tok.encode(piece, add_special_tokens=False).ids)

    def _pattern(self, word: str) -> re.Pattern[str]:
        """The piece pattern for a word holding Unicode whitespace-free punctuation (cached per set of marks)."""
        kinds = self._kinds
        cut = "".join(sorted(ch for ch in set(_NON_ASCII.findall(word)) if kinds[ch] == _CUT))
        if not cut:
            return _PLAIN
        pattern = self._patterns.get(cut)
        if pattern is None:
            if len(self._patterns) > 4096:
                self._patterns.clear()
            marks = re.escape(cut)
            pattern = self._patterns[cut] = re.compile(rf"[^ \t\n\r{_PUNCT}{marks}]+|[{_PUNCT}{marks}]")
        return pattern


class _Counts(dict[str, int]):
    """A cache of counts that fills itself: a missing key is counted by ``fill`` and stored."""

    __slots__ = ("_fill",)

    def __init__(self, fill: Callable[[str], int]) -> None:
        super().__init__()
        self._fill = fill

    def __missing__(self, key: str) -> int:
        n = self[key] = self._fill(key)
        return n


def word_counter_for(tok: Any) -> WordCounter | None:
    """A ``WordCounter`` when ``tok`` is BERT-style WordPiece, else None."""
    spec = json.loads(tok.to_str())
    norm, pre, model = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}, spec.get("model") or {}
    if (norm.get("type"), pre.get("type"), model.get("type")) != ("BertNormalizer", "BertPreTokenizer", "WordPiece"):
        return None
    counter = WordCounter(tok, spec)
    return counter if counter.ascii_as_assumed() else None
