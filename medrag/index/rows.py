"""Corpus rows as the index reads them: texts for BM25 (fields joined by newlines) and passages for the
encoders (joined texts, or (title, text) pairs), cut at the same row boundaries by every engine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..config import EncoderConfig
from ..ingest.store import Corpus
from .encoder import Passage

__all__ = ["BATCH_ROWS", "passage_texts", "row_texts", "row_batches", "part_ranges", "row_passages"]

#: rows per BM25 batch: the build's unit (every engine cuts the corpus at the same rows)
BATCH_ROWS = 8192
_BATCH = BATCH_ROWS


def passage_texts(batch: Any, fields: Sequence[str]) -> list[str]:
    """The indexed text of each row of an Arrow batch: the non-empty ``fields`` joined by newlines."""
    columns = [batch.column(batch.schema.get_field_index(f)).to_pylist() for f in fields]
    return ["\n".join(part for part in parts if part) for parts in zip(*columns, strict=True)]


def row_texts(corpus: Corpus, fields: Sequence[str], start: int, stop: int) -> list[str]:
    """The indexed texts of corpus rows ``[start, stop)``."""
    part = corpus.table.select(list(fields)).slice(start, stop - start).combine_chunks()
    return passage_texts(part.to_batches()[0], fields) if part.num_rows else []


def row_batches(corpus: Corpus, fields: Sequence[str], start: int, stop: int,
                batch_rows: int = _BATCH) -> Iterator[list[str]]:
    """Texts of rows ``[start, stop)`` in batches of ``batch_rows`` (the BM25 build's unit: every engine cuts
    the corpus at the same rows, so term ids come out the same)."""
    for a in range(start, stop, batch_rows):
        yield row_texts(corpus, fields, a, min(a + batch_rows, stop))


def part_ranges(n_rows: int, part_rows: int) -> list[tuple[int, int, int]]:
    """``(part, start, stop)`` BM25 row ranges: ``part_rows`` rounded up to whole batches."""
    size = -(-part_rows // _BATCH) * _BATCH
    return [(i, a, min(a + size, n_rows)) for i, a in enumerate(range(0, n_rows, size))]


def row_passages(corpus: Corpus, encoder: EncoderConfig, start: int, stop: int) -> list[Passage]:
    """What the encoder reads for rows ``[start, stop)``: joined texts, or (title, text) pairs (``"pair"``)."""
    if encoder.passage_format == "join":
        return list(row_texts(corpus, encoder.fields, start, stop))
    part = corpus.table.select(list(encoder.fields)).slice(start, stop - start)
    first, second = (part.column(f).to_pylist() for f in encoder.fields)
    return [(a or "", b or "") for a, b in zip(first, second, strict=True)]
