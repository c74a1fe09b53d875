"""Row masks for metadata filters, computed on the memory-mapped corpus columns (pyarrow.compute)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..ingest.store import Corpus
from .base import Filters

__all__ = ["filter_mask", "MaskCache"]


def _is_in(column: pa.ChunkedArray, values: tuple[str, ...]) -> pa.ChunkedArray:
    return pc.is_in(column, value_set=pa.array(values, type=pa.string()))


def filter_mask(corpus: Corpus, filters: Filters) -> np.ndarray:
    """Boolean array over corpus rows: True where a row satisfies every filter."""
    mask = pa.chunked_array([pa.array(np.ones(corpus.num_rows, dtype=bool))])
    if filters.source is not None:
        mask = pc.and_(mask, _is_in(corpus.column("source"), filters.source))
    if filters.doc_ids is not None:
        mask = pc.and_(mask, _is_in(corpus.column("doc_id"), filters.doc_ids))
    if filters.year is not None:
        lo, hi = filters.year
        year = corpus.column("year")
        ok = pc.is_valid(year)
        if lo is not None:
            ok = pc.and_(ok, pc.greater_equal(year, lo))
        if hi is not None:
            ok = pc.and_(ok, pc.less_equal(year, hi))
        mask = pc.and_(mask, pc.fill_null(ok, False))
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


class MaskCache:
    """A small LRU of masks per Filters value (the reasoning loop repeats the same filters)."""

    def __init__(self, corpus: Corpus, size: int = 16) -> None:
        self.corpus = corpus
        self.size = size
        self._masks: OrderedDict[Filters, np.ndarray] = OrderedDict()

    def get(self, filters: Filters | None) -> np.ndarray | None:
        if filters is None or filters.empty:
            return None
        mask = self._masks.get(filters)
        if mask is None:
            mask = filter_mask(self.corpus, filters)
            self._masks[filters] = mask
            if len(self._masks) > self.size:
                self._masks.popitem(last=False)
        else:
            self._masks.move_to_end(filters)
        return mask
