"""A tokenizer for biomedical text (bm25s' English stopwords, PyStemmer stemming).

Rules (all recorded in the index manifest through ``BM25Config``):

- lower-casing (``lowercase``);
- Greek letters become their names (``greek="expand"``): "β-blocker" → "beta-blocker", "TNF-α" → "tnf-alpha",
  so a query spelled either way matches; ``"keep"`` leaves them as letters;
- a token is a run of letters/digits, so a hyphenated term ("beta-blocker", "COVID-19", "CHA2DS2-VASc")
  yields its parts; with ``hyphens="both"`` it also yields the joined form ("betablocker", "covid19");
- a decimal number stays whole ("2.5", "0.625"), so doses are not split into two integers;
- stopwords are dropped (checked before stemming, as bm25s does), then words are stemmed with PyStemmer.

The same rules run on documents (``TermIds``, which stems each distinct word once) and on queries
(``analyze``), so both sides always see identical terms.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np

from ..config import BM25Config
from ..errors import ConfigError, DependencyMissingError

__all__ = ["GREEK", "BiomedicalTokenizer", "TermIds", "tokenizer_spec"]

#: Greek letters (lower and upper case, plus the micro sign) and the names they expand to.
GREEK: dict[str, str] = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
    "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi",
    "ο": "omicron", "π": "pi", "ρ": "rho", "σ": "sigma", "ς": "sigma", "τ": "tau", "υ": "upsilon",
    "φ": "phi", "χ": "chi", "ψ": "psi", "ω": "omega", "µ": "mu",
}
_GREEK_UPPER = {k.upper(): v for k, v in GREEK.items() if k.upper() != k and k not in ("ς", "µ")}
# Letters are expanded as whole words only when they stand alone; inside a word ("TNFα") they are
# separated by a hyphen so the compound rule applies ("tnf-alpha").
_GREEK_TABLE = str.maketrans({k: f"-{v}-" for k, v in {**GREEK, **_GREEK_UPPER}.items()})
_HAS_GREEK = re.compile("[\u0391-\u03a9\u03b1-\u03c9\u00b5]")

# a run of word characters, joined to further runs by hyphens or (between digits) by a decimal point
_TOKEN = re.compile(r"[^\W_]+(?:(?:-+|(?<=\d)\.(?=\d))[^\W_]+)*")
# the same without hyphen joining (``hyphens="split"``: parts only, no Python post-processing)
_TOKEN_PARTS = re.compile(r"[^\W_]+(?:(?<=\d)\.(?=\d)[^\W_]+)*")
_HYPHENS = re.compile(r"-+")


def tokenizer_spec(config: BM25Config) -> dict[str, object]:
    """The tokenizer settings as stored in the index manifest."""
    return {
        "name": "medrag-biomedical",
        "version": 1,
        "lowercase": config.lowercase,
        "greek": config.greek,
        "hyphens": config.hyphens,
        "stopwords": config.stopwords if isinstance(config.stopwords, str) else list(config.stopwords),
        "stemmer": config.stemmer,
        "min_token_length": config.min_token_length,
        "fields": list(config.fields),
    }


@lru_cache(maxsize=8)
def _stemmer(language: str) -> Any:
    try:
        import Stemmer
    except ImportError as exc:  # pragma: no cover - PyStemmer is a core dependency
        raise DependencyMissingError("PyStemmer", "default", "BM25 stemming") from exc
    try:
        return Stemmer.Stemmer(language)
    except KeyError as exc:
        raise ConfigError(
            f"unknown stemmer language {language!r}; PyStemmer knows: {', '.join(Stemmer.algorithms())}"
        ) from exc


def _stopwords(spec: str | tuple[str, ...]) -> frozenset[str]:
    if isinstance(spec, tuple):
        return frozenset(w.lower() for w in spec)
    if spec == "none":
        return frozenset()
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


class BiomedicalTokenizer:
    """``analyze(text) -> terms`` for queries and ``bm25s_tokenizer()`` for corpus builds."""

    def __init__(self, config: BM25Config | None = None) -> None:
        self.config = config or BM25Config()
        self.stopwords = _stopwords(self.config.stopwords)
        self.stemmer = _stemmer(self.config.stemmer) if self.config.stemmer else None
        self.stem: Callable[[str], str] | None = self.stemmer.stemWord if self.stemmer is not None else None
        self._both = self.config.hyphens == "both"
        self._min = self.config.min_token_length

    def normalize(self, text: str) -> str:
        """Lower-case and expand Greek letters (the steps before splitting)."""
        if self.config.lowercase:
            text = text.lower()
        if self.config.greek == "expand" and _HAS_GREEK.search(text):
            text = text.translate(_GREEK_TABLE)
        return text

    def split(self, text: str) -> list[str]:
        """Surface tokens of normalised text: parts of hyphenated compounds (+ the joined form), decimals whole."""
        if not self._both or "-" not in text:
            raw = _TOKEN_PARTS.findall(text)
            return [t for t in raw if len(t) >= self._min] if self._min > 1 else raw
        raw = _TOKEN.findall(text)
        out: list[str] = []
        for tok in raw:
            if "-" in tok:
                parts = [p for p in _HYPHENS.split(tok) if p]
                out.extend(parts)
                if self._both and len(parts) > 1:
                    out.append("".join(parts))
            else:
                out.append(tok)
        return [t for t in out if len(t) >= self._min] if self._min > 1 else out

    def words(self, text: str) -> list[str]:
        """Surface words of ``text`` (``split(normalize(text))``): what stopwords and stemming apply to."""
        return self.split(self.normalize(text))

    def analyze(self, text: str) -> list[str]:
        """Index terms of ``text``: normalise, split, drop stopwords, stem (duplicates kept)."""
        words = [w for w in self.words(text) if w not in self.stopwords]
        if self.stem is None:
            return words
        stem = self.stem
        return [stem(w) for w in words]

    def term_ids(self) -> TermIds:
        """A growing vocabulary that turns batches of documents into term ids (for index builds)."""
        return TermIds(self)


class TermIds:
    """Documents → term ids with a vocabulary grown in order of first appearance (bm25s' convention).

    Equivalent to bm25s' ``Tokenizer`` with ``analyze``'s rules, but the per-token work is C-level: each
    batch's words are looked up with ``map`` over a word → id dict in which stopwords map to -1; only words
    never seen before go through Python (stopword check, stemming, id assignment).
    """

    def __init__(self, tokenizer: BiomedicalTokenizer) -> None:
        self.tokenizer = tokenizer
        self.word_to_id: dict[str, int] = dict.fromkeys(tokenizer.stopwords, -1)
        self.term_to_id: dict[str, int] = {}

    def _register(self, words: set[str]) -> None:
        ordered = sorted(words)  # deterministic ids whatever the set order
        stemmer = self.tokenizer.stemmer
        stems = stemmer.stemWords(ordered) if stemmer is not None else ordered
        terms = self.term_to_id
        for word, term in zip(ordered, stems, strict=True):
            self.word_to_id[word] = terms.setdefault(term, len(terms))

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, lengths)``: the concatenated term ids of ``texts`` and each text's number of terms."""
        split = self.tokenizer.words
        docs = [split(t) for t in texts]
        counts = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        flat = list(chain.from_iterable(docs))
        new = set(flat).difference(self.word_to_id)
        if new:
            self._register(new)
        ids = np.fromiter(map(self.word_to_id.__getitem__, flat), dtype=np.int64, count=len(flat))
        keep = ids >= 0
        if keep.all():
            return ids, counts
        doc = np.repeat(np.arange(len(docs), dtype=np.int64), counts)
        return ids[keep], np.bincount(doc[keep], minlength=len(docs)).astype(np.int64)
