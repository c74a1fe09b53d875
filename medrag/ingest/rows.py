"""Reading single rows of a memory-mapped Arrow record batch straight from its buffers.

``pyarrow``'s ``take``/``to_pylist`` cost tens of microseconds per column and call, which dominates a search
that returns ten hits. ``BatchRows`` decodes one row from the column buffers (offsets, data, validity bitmaps)
with memoryviews: the cost is a few field reads per row, independent of the batch and corpus size.
Supports the column types of ``CHUNK_SCHEMA``: string, int32 and list<string>.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute for the batch's extra column

from ..types import Chunk, Hit, Metadata

__all__ = ["BatchRows"]

Getter = Callable[[int], Any]
_EMPTY = memoryview(b"")
_LISTS = ("mesh", "publication_types")
_NO_METADATA = Metadata()  # frozen: one shared instance for rows without metadata
_META_FIELDS = ("pmid", "pmcid", "doi", "journal", "year", *_LISTS, "url", "license", "organization")


def _none(i: int) -> None:
    return None


def _strings(arr: pa.Array) -> Getter:
    if arr.null_count == len(arr):
        return _none
    validity, offsets, data = arr.buffers()[:3]
    off = memoryview(offsets).cast("i")
    mv = memoryview(data) if data is not None else _EMPTY
    base = arr.offset
    if arr.null_count == 0:
        return lambda i: str(mv[off[i + base] : off[i + base + 1]], "utf-8")
    bits = memoryview(validity)

    def get(i: int) -> str | None:
        j = i + base
        return str(mv[off[j] : off[j + 1]], "utf-8") if (bits[j >> 3] >> (j & 7)) & 1 else None

    return get


def _int32(arr: pa.Array) -> Getter:
    if arr.null_count == len(arr):
        return _none
    values = memoryview(arr.buffers()[1]).cast("i")
    base = arr.offset
    if arr.null_count == 0:
        return lambda i: values[i + base]
    bits = memoryview(arr.buffers()[0])

    def get(i: int) -> int | None:
        j = i + base
        return values[j] if (bits[j >> 3] >> (j & 7)) & 1 else None

    return get


def _string_lists(arr: pa.Array) -> Getter:
    if arr.null_count == len(arr) or len(arr.values) == 0:
        return lambda i: ()
    validity, offsets = arr.buffers()[:2]
    off = memoryview(offsets).cast("i")
    base = arr.offset
    child = _strings(arr.values)
    bits = memoryview(validity) if arr.null_count else None

    def get(i: int) -> tuple[str, ...]:
        j = i + base
        if bits is not None and not (bits[j >> 3] >> (j & 7)) & 1:
            return ()
        return tuple(child(x) for x in range(off[j], off[j + 1]))

    return get


def _getter(arr: pa.Array) -> Getter:
    if pa.types.is_string(arr.type):
        return _strings(arr)
    if pa.types.is_int32(arr.type):
        return _int32(arr)
    if pa.types.is_list(arr.type) and pa.types.is_string(arr.type.value_type):
        return _string_lists(arr)
    raise TypeError(f"unsupported column type {arr.type}")


class BatchRows:
    """Row access to one record batch in ``CHUNK_SCHEMA`` (getters built once, on first use)."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.get = {name: _getter(batch.column(name)) for name in batch.schema.names}
        # metadata fields that hold something in this batch (most are null for a given source)
        self._meta = [
            (name, self.get[name]) for name in _META_FIELDS
            if batch.column(name).null_count < batch.num_rows
            and not (name in _LISTS and len(batch.column(name).values) == 0)
        ]
        extra = batch.column("extra")
        self._extra = None if pa.compute.max(pa.compute.binary_length(extra)).as_py() in (None, 0) else self.get["extra"]

    def metadata(self, i: int) -> Metadata:
        fields = {name: get(i) for name, get in self._meta}
        if self._extra is not None:
            extra = self._extra(i)
            if extra:
                fields["extra"] = tuple(sorted(json.loads(extra).items()))
        return Metadata(**fields) if fields else _NO_METADATA

    def chunk(self, i: int) -> Chunk:
        g = self.get
        return Chunk(
            chunk_id=g["chunk_id"](i), doc_id=g["doc_id"](i), source=g["source"](i), title=g["title"](i),
            section=g["section"](i), text=g["text"](i), position=g["position"](i), metadata=self.metadata(i),
        )

    def hit(self, i: int, score: float, rank: int) -> Hit:
        g = self.get
        return Hit(
            chunk_id=g["chunk_id"](i), doc_id=g["doc_id"](i), score=score, rank=rank, text=g["text"](i),
            title=g["title"](i), section=g["section"](i), source=g["source"](i), metadata=self.metadata(i),
        )
