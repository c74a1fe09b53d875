"""Arrow arrays built straight from their buffers, for the ingest writer's hot path.

``pa.array`` on a Python list first asks whether the list is a pandas object, which imports pandas (about
half a CPU-second per process, more than the rest of a small ingest's start-up). These builders assemble the
same arrays (same buffers: validity bitmap only when there are nulls, int32 offsets, UTF-8 data) from
``array.array`` and ``bytes`` without that check. Above int32 offsets they defer to ``pa.array``.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Any, cast

import pyarrow as pa

__all__ = ["int32_array", "numpy_array", "to_numpy", "utf8_array", "utf8_list_array"]

_INT32_MAX = 2**31 - 1


def _validity(values: Sequence[object]) -> pa.Buffer:
    bits = bytearray((len(values) + 7) // 8)
    for i, value in enumerate(values):
        if value is not None:
            bits[i >> 3] |= 1 << (i & 7)
    return pa.py_buffer(bytes(bits))


def utf8_array(values: Sequence[str | None]) -> pa.Array:
    """``pa.array(values, pa.string())``, without the pandas check."""
    nulls = sum(1 for v in values if v is None)
    if nulls == len(values):
        return pa.nulls(len(values), pa.string())
    strings = cast(Sequence[str], values) if not nulls else ["" if v is None else v for v in values]
    joined = "".join(strings)
    data = joined.encode("utf-8")
    if len(data) == len(joined):  # all ASCII: byte lengths are character lengths
        lengths: Iterable[int] = map(len, strings)
    else:
        lengths = [len(v) if v.isascii() else len(v.encode("utf-8")) for v in strings]
    offsets = array("q", accumulate(lengths, initial=0))
    if offsets[-1] > _INT32_MAX:
        return pa.array(values, pa.string())
    buffers = [_validity(values) if nulls else None, pa.py_buffer(array("i", offsets)), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string(), len(values), buffers, null_count=nulls)


def int32_array(values: Sequence[int | None]) -> pa.Array:
    """``pa.array(values, pa.int32())``, without the pandas check."""
    nulls = sum(1 for v in values if v is None)
    if nulls == len(values):
        return pa.nulls(len(values), pa.int32())
    data = array("i", [0 if v is None else v for v in values])
    validity = _validity(values) if nulls else None
    return pa.Array.from_buffers(pa.int32(), len(values), [validity, pa.py_buffer(data)], null_count=nulls)


def utf8_list_array(values: Sequence[Sequence[str]]) -> pa.Array:
    """``pa.array(values, pa.list_(pa.string()))`` for lists without nulls, without the pandas check."""
    offsets = array("q", accumulate(map(len, values), initial=0))
    if offsets[-1] > _INT32_MAX:
        return pa.array([list(v) for v in values], pa.list_(pa.string()))
    child = utf8_array([s for v in values for s in v])
    return pa.Array.from_buffers(
        pa.list_(pa.string()), len(values), [None, pa.py_buffer(array("i", offsets))], children=[child]
    )


def numpy_array(values: Any) -> pa.Array:
    """``pa.array(values)`` for a 1-D numpy bool/int32/int64 array, without the pandas check (copies once)."""
    import numpy as np

    arr = np.ascontiguousarray(values)
    if arr.dtype == np.bool_:
        bits = np.packbits(arr, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(arr), [None, pa.py_buffer(bits.tobytes())])
    types = {np.dtype(np.int32): pa.int32(), np.dtype(np.int64): pa.int64()}
    if arr.ndim != 1 or arr.dtype not in types:
        raise TypeError(f"numpy_array takes a 1-D bool/int32/int64 array, not {arr.dtype} x{arr.ndim}")
    return pa.Array.from_buffers(types[arr.dtype], len(arr), [None, pa.py_buffer(arr.tobytes())])


def to_numpy(values: pa.Array | pa.ChunkedArray, fill: int | None = None) -> Any:
    """A bool/int32/int64/uint64 Arrow array as numpy, read from its buffers (``to_numpy`` imports pandas).

    Nulls are an error unless ``fill`` is given (their slots then hold ``fill``).
    """
    import numpy as np

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n, offset, data = len(values), values.offset, values.buffers()[1]
    if values.type == pa.bool_():
        bits = np.frombuffer(data, dtype=np.uint8) if n else np.zeros(0, np.uint8)
        out = np.unpackbits(bits, count=offset + n, bitorder="little")[offset:].astype(bool)
    else:
        dtypes = {pa.int32(): np.int32, pa.int64(): np.int64, pa.uint64(): np.uint64}
        if values.type not in dtypes:
            raise TypeError(f"to_numpy takes bool/int32/int64/uint64 arrays, not {values.type}")
        dtype = np.dtype(dtypes[values.type])
        out = np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize) if n else np.zeros(0, dtype)
    if values.null_count:
        if fill is None:
            raise ValueError("to_numpy: the array has nulls and no fill value was given")
        out = np.where(to_numpy(values.is_valid()), out, fill).astype(out.dtype)
    return out
