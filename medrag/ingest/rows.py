"""Reading rows of memory-mapped Arrow record batches straight from their buffers, column by column.

``pyarrow``'s ``take``/``to_pylist`` cost tens of microseconds per column and call, which dominates a search
that returns ten hits. Here each batch's column buffers (offsets, data, validity bitmaps) are wrapped once in
memoryviews (``BatchRows``), and ``RowReader`` decodes the ``k`` requested rows with no per-value function
call: a row's six text columns in one step, each metadata column in one comprehension over the rows,
whatever batch each row lives in. The cost is a few buffer reads per value, independent of the batch and
corpus size. A value is decoded as ``view[a:b].tobytes().decode()``: ``str(view[a:b], "utf-8")`` takes the
generic codec path and costs about 1.7x as much.

``Chunk`` and ``Metadata`` (frozen slotted dataclasses) are filled column by column through their slot
descriptors (``_instances``), which gives the same objects as calling the constructor at a fraction of the
cost of a frozen dataclass ``__init__``; a ``Hit`` references its row's values as one ``StoredRow`` tuple
(``Hit.from_rows``). Metadata is built only for the fields that hold something in the rows' batches (a shared
empty ``Metadata`` otherwise).

Supports the column types of ``CHUNK_SCHEMA``: string, int32 and list<string>.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from itertools import repeat
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..types import Chunk, Hit, Metadata, StoredRow

__all__ = ["BatchRows", "MemoryRow", "RowReader", "TEXT_COLUMNS", "memory_chunks", "memory_hits", "memory_rows"]

_EMPTY = memoryview(b"")
_LISTS = ("mesh", "publication_types")
_NO_METADATA = Metadata()  # frozen: one shared instance for rows without metadata
_META_FIELDS = ("pmid", "pmcid", "doi", "journal", "year", *_LISTS, "url", "license", "organization")
#: the non-null string columns every record carries (a row's six are read together)
TEXT_COLUMNS = ("chunk_id", "doc_id", "source", "title", "section", "text")

#: A row held in memory (``Corpus.load_rows``): the six ``TEXT_COLUMNS``, ``position``, its ``Metadata``
#: (equal values are shared between rows: ``memory_rows``); the layout ``Hit`` references.
MemoryRow = StoredRow

# Column buffers of one batch: (offsets or values, data, validity bits or None, array offset, child or None).
Buffers = tuple[Any, Any, Any, int, Any]


def _bits(arr: pa.Array) -> memoryview | None:
    return memoryview(arr.buffers()[0]) if arr.null_count else None


def _buffers(arr: pa.Array) -> Buffers:
    """The memoryviews a column's values are decoded from (see ``Buffers``)."""
    bufs = arr.buffers()
    if pa.types.is_string(arr.type):
        data = memoryview(bufs[2]) if bufs[2] is not None else _EMPTY
        return memoryview(bufs[1]).cast("i"), data, _bits(arr), arr.offset, None
    if pa.types.is_int32(arr.type):
        if arr.null_count == len(arr):  # values buffer may be absent: every read goes through the bits
            return None, None, memoryview(bytes(len(arr) // 8 + 1)), 0, None
        return memoryview(bufs[1]).cast("i"), None, _bits(arr), arr.offset, None
    if pa.types.is_list(arr.type) and pa.types.is_string(arr.type.value_type):
        return memoryview(bufs[1]).cast("i"), None, _bits(arr), arr.offset, _buffers(arr.values)
    raise TypeError(f"unsupported column type {arr.type}")


def _strings(parts: Sequence[Buffers], js: Sequence[int]) -> list[str | None]:
    """String values of local rows ``js`` (``parts``: each row's column buffers)."""
    return [
        mv[off[j + base]: off[j + base + 1]].tobytes().decode()
        if bits is None or bits[(j + base) >> 3] >> ((j + base) & 7) & 1 else None
        for (off, mv, bits, base, _), j in zip(parts, js, strict=True)
    ]


def _int32s(parts: Sequence[Buffers], js: Sequence[int]) -> list[int | None]:
    return [
        values[j + base] if bits is None or bits[(j + base) >> 3] >> ((j + base) & 7) & 1 else None
        for (values, _, bits, base, _), j in zip(parts, js, strict=True)
    ]


def _string_lists(parts: Sequence[Buffers], js: Sequence[int]) -> list[tuple[str, ...]]:
    """list<string> values as tuples (a null list reads as ``()``, as ``Metadata`` stores it)."""
    out: list[tuple[str, ...]] = []
    for (off, _, bits, base, child), j in zip(parts, js, strict=True):
        i = j + base
        if (bits is not None and not bits[i >> 3] >> (i & 7) & 1) or off[i] == off[i + 1]:
            out.append(())
            continue
        coff, cmv, cbits, cbase, _ = child
        out.append(tuple(
            cmv[coff[x + cbase]: coff[x + cbase + 1]].tobytes().decode()
            if cbits is None or cbits[(x + cbase) >> 3] >> ((x + cbase) & 7) & 1 else None  # type: ignore[misc]
            for x in range(off[i], off[i + 1])
        ))
    return out


class BatchRows:
    """One record batch in ``CHUNK_SCHEMA``: its column buffers and which metadata it holds (built once)."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.num_rows = batch.num_rows
        self.columns: dict[str, Buffers] = {name: _buffers(batch.column(name)) for name in batch.schema.names}
        # metadata fields that hold something in this batch (most are null for a given source)
        self.meta = frozenset(
            name for name in _META_FIELDS
            if batch.column(name).null_count < batch.num_rows
            and not (name in _LISTS and len(batch.column(name).values) == 0)
        )
        extra = batch.column("extra")
        self.has_extra = pc.max(pc.binary_length(extra)).as_py() not in (None, 0)
        # (offsets from the array's first row, bytes) of each text column; None when one holds a null
        self.text: tuple[tuple[Any, Any], ...] | None = None
        if not any(batch.column(name).null_count for name in TEXT_COLUMNS):
            self.text = tuple(self._text(batch.column(name)) for name in TEXT_COLUMNS)

    @staticmethod
    def _text(arr: pa.Array) -> tuple[Any, Any]:
        off, data, _, base, _ = _buffers(arr)
        return (off[base:] if base else off), data


_READERS: dict[str, Callable[..., list[Any]]] = {"mesh": _string_lists, "publication_types": _string_lists, "year": _int32s, "position": _int32s}


class RowReader:
    """Decodes rows (``batches[i]``'s local row ``js[i]``) into records, column by column."""

    def __init__(self, batches: Sequence[BatchRows], js: Sequence[int]) -> None:
        self.batches = batches
        self.js = js

    def column(self, name: str) -> list[Any]:
        parts = [b.columns[name] for b in self.batches]
        read: Callable[[Sequence[Buffers], Sequence[int]], list[Any]] = _READERS.get(name, _strings)
        return read(parts, self.js)

    def text(self) -> dict[str, Sequence[str]]:
        """The ``TEXT_COLUMNS`` of every row (see ``rows``)."""
        if not all(b.text is not None for b in self.batches):
            return {name: self.column(name) for name in TEXT_COLUMNS}
        columns = list(zip(*self.rows(repeat(0), repeat(None)), strict=False))[:6] if self.js else [()] * 6
        return dict(zip(TEXT_COLUMNS, columns, strict=True))

    def rows(self, positions: Any = None, metadata: Any = None) -> list[StoredRow]:
        """Each row as a ``StoredRow``: its six text strings read in one step (no nulls there), then ``positions``
        and ``metadata`` (default: read from the rows)."""
        positions = self.column("position") if positions is None else positions
        metadata = self.metadata() if metadata is None else metadata
        if not all(b.text is not None for b in self.batches):
            text = [self.column(name) for name in TEXT_COLUMNS]
            return list(zip(*text, positions, metadata, strict=False))
        rows: list[StoredRow] = []
        for b, j, p, m in zip(self.batches, self.js, positions, metadata, strict=False):
            (o0, m0), (o1, m1), (o2, m2), (o3, m3), (o4, m4), (o5, m5) = b.text  # type: ignore[misc]
            rows.append((
                m0[o0[j]: o0[j + 1]].tobytes().decode(), m1[o1[j]: o1[j + 1]].tobytes().decode(),
                m2[o2[j]: o2[j + 1]].tobytes().decode(), m3[o3[j]: o3[j + 1]].tobytes().decode(),
                m4[o4[j]: o4[j + 1]].tobytes().decode(), m5[o5[j]: o5[j + 1]].tobytes().decode(), p, m,
            ))
        return rows

    def metadata(self) -> list[Metadata] | Any:
        """One ``Metadata`` per row (the shared empty one repeated when the batches hold none)."""
        distinct = {id(b): b for b in self.batches}.values()
        present = set().union(*(b.meta for b in distinct)) if distinct else set()
        extra = any(b.has_extra for b in distinct)
        if not present and not extra:
            return repeat(_NO_METADATA, len(self.js))
        values: dict[str, Any] = {name: self.column(name) for name in _META_FIELDS if name in present}
        if extra:
            values["extra"] = [tuple(sorted(json.loads(e).items())) if e else () for e in self.column("extra")]
        return _instances(Metadata, len(self.js), values)

    def hits(self, scores: Sequence[float], ranks: Sequence[int] | None = None) -> list[Hit]:
        """One ``Hit`` per row with ``scores`` and ``ranks`` (default 1..n)."""
        return Hit.from_rows(self.rows(), scores, range(1, len(self.js) + 1) if ranks is None else ranks)

    def chunks(self) -> list[Chunk]:
        return memory_chunks(self.rows())


#: held-row columns whose equal values share one object (few distinct values, or repeated by a document's
#: chunks): less memory, and the objects a batch of hits references stay in cache
_SHARED = ("doc_id", "source", "title", "section")


def memory_rows(batch: BatchRows) -> list[MemoryRow]:
    """Every row of ``batch`` decoded once into a ``MemoryRow`` (read like ``RowReader``, so values are equal).

    Equal values of the ``_SHARED`` columns and equal ``Metadata`` are held as one object each."""
    n = batch.num_rows
    reader = RowReader([batch] * n, range(n))
    text = reader.text()
    columns = [_shared(text[name]) if name in _SHARED else text[name] for name in TEXT_COLUMNS]
    return list(zip(*columns, reader.column("position"), _shared(reader.metadata()), strict=True))


def _shared(values: Any) -> list[Any]:
    """``values`` with each run of equal values (and, for few distinct values, every equal value) as one object."""
    memo: dict[Any, Any] = {}
    out: list[Any] = []
    previous: Any = _EMPTY
    for value in values:
        if value != previous:
            previous = memo.setdefault(value, value) if len(memo) < _MEMO else value
        out.append(previous)
    return out


_MEMO = 4096  # distinct values remembered per batch (beyond them, only runs of equal values are shared)


def memory_hits(rows: Sequence[MemoryRow], scores: Sequence[float], ranks: Sequence[int] | None = None) -> list[Hit]:
    """``Hit``s referencing in-memory rows (as ``RowReader.hits``); ``ranks`` (default 1..n) lets one call build
    the hits of a whole batch of queries."""
    return Hit.from_rows(rows, scores, range(1, len(rows) + 1) if ranks is None else ranks)


def memory_chunks(rows: Sequence[MemoryRow]) -> list[Chunk]:
    """``Chunk``s from in-memory rows (as ``RowReader.chunks``)."""
    n = len(rows)
    if not n:
        return []
    values = dict(zip((*TEXT_COLUMNS, "position", "metadata"), zip(*rows, strict=True), strict=True))
    return _instances(Chunk, n, values)


def _defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = None  # built per object below (never shared)
    return out


def _slot_setters(cls: type) -> list[tuple[str, Any]] | None:
    """``(field, slot setter)`` pairs of a frozen slotted dataclass without ``__post_init__`` (else None)."""
    if hasattr(cls, "__post_init__") or "__slots__" not in cls.__dict__:
        return None
    return [(f.name, getattr(cls, f.name).__set__) for f in fields(cls)]


_SETTERS = {cls: _slot_setters(cls) for cls in (Chunk, Metadata)}
_DEFAULTS = {cls: _defaults(cls) for cls in (Chunk, Metadata)}
_FACTORIES = {cls: {f.name: f.default_factory for f in fields(cls) if f.default_factory is not MISSING}
              for cls in (Chunk, Metadata)}


def _instances(cls: Any, n: int, values: dict[str, Any]) -> list[Any]:
    """``n`` records of ``cls`` whose fields come from ``values`` (field -> n values), defaults elsewhere.

    Equal to ``[cls(**row) for row in rows]``; frozen slotted dataclasses are filled column by column
    through their slot descriptors (one C-level ``map`` per field instead of a Python ``__init__`` per row).
    """
    for name, factory in _FACTORIES[cls].items():
        if name not in values:
            values[name] = [factory() for _ in range(n)]
    setters = _SETTERS[cls]
    if setters is None:  # pragma: no cover - only if a record type gains __post_init__ or loses slots
        names = list(values)
        return [cls(**dict(zip(names, row, strict=True))) for row in zip(*values.values(), strict=True)]
    objs = list(map(object.__new__, repeat(cls, n)))
    defaults = _DEFAULTS[cls]
    for name, set_slot in setters:
        column = values[name] if name in values else repeat(defaults[name], n)
        deque(map(set_slot, objs, column), maxlen=0)
    return objs
