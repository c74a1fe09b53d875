"""Per-term score bounds of a BM25 index, persisted beside bm25s' files (``term_bounds.medrag.npy``).

Exact top-k pruning (MaxScore, ``_bm25_prune``) needs, per vocabulary term, the largest posting value
(``bm25_query.term_bounds``). Computing it reads every posting of the index, so every BM25 build writes it once
(float64, one value per term; an empty array when pruning must stay off: a negative or NaN posting value) and
``BM25Index.load`` memory-maps it. The file is medrag's own addition to bm25s' layout (``bm25s.BM25.load`` reads
its files by name and ignores it); an index written before it existed has no such file and computes the bounds
on the first pruned query instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IndexFormatError

__all__ = ["BOUNDS_FILE", "BoundsAccumulator", "term_bounds", "write_bounds", "load_bounds"]

BOUNDS_FILE = "term_bounds.medrag.npy"


class BoundsAccumulator:
    """``term_bounds`` gathered while postings are placed (the out-of-core merge: ``data`` is never re-read).

    ``add`` takes one slice's postings grouped by term; ``result`` equals ``term_bounds`` of the finished
    ``indptr``/``data``. Memory: one float64 per term.
    """

    def __init__(self, n_terms: int) -> None:
        self._max = np.full(n_terms, -np.inf, dtype=np.float64)
        self._prunable = True

    def add(self, terms: np.ndarray, starts: np.ndarray, values: np.ndarray) -> None:
        """``values`` grouped by term: group ``i`` starts at ``starts[i]`` and holds term ``terms[i]`` (distinct)."""
        if values.size == 0 or not self._prunable:
            return
        if not values.min() >= 0:  # a negative or NaN value: bounds do not hold, pruning stays off
            self._prunable = False
            return
        self._max[terms] = np.maximum(self._max[terms], np.maximum.reduceat(values, starts))

    def result(self) -> np.ndarray:
        if not self._prunable:
            return np.zeros(0, dtype=np.float64)
        out = self._max.copy()
        out[out == -np.inf] = 0.0  # terms without postings
        return out


def term_bounds(indptr: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Per term ``t``: the largest posting value ``max(data[indptr[t]:indptr[t + 1]])`` (0 for a term without
    postings), as float64 (exact for float32 or float64 data); an empty array (pruning off) when any posting
    value is negative or NaN, since the bounds of pruning hold only for non-negative contributions. One
    ``BoundsAccumulator`` step over the whole of ``data`` (read, vectorised); writes nothing."""
    bounds = BoundsAccumulator(len(indptr) - 1)
    starts = np.asarray(indptr[:-1])
    live = np.flatnonzero(np.asarray(indptr[1:]) > starts)  # terms with postings: each segment ends at the next
    bounds.add(live, starts[live], np.asarray(data[: int(indptr[-1]) if len(indptr) else 0]))
    return bounds.result()


def write_bounds(out: Path, bounds: np.ndarray) -> None:
    """``out/BOUNDS_FILE``: float64, one value per term, or empty (pruning off)."""
    np.save(out / BOUNDS_FILE, np.asarray(bounds, dtype=np.float64), allow_pickle=False)


def load_bounds(path: Path, n_terms: int) -> np.ndarray | None:
    """The persisted bounds of the index at ``path`` (memory-mapped, read-only), or None when the index has no
    bounds file (built before it existed: the bounds are computed on first use). Checked: 1-D float64 of
    ``n_terms`` values (or empty); else ``IndexFormatError``. Writes nothing."""
    file = path / BOUNDS_FILE
    if not file.is_file():
        return None
    try:
        bounds = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise IndexFormatError(f"{path}: {BOUNDS_FILE} is unreadable ({type(exc).__name__}); run `medrag index "
                               "verify`, then rebuild the index") from None
    if bounds.dtype != np.float64 or bounds.ndim != 1 or bounds.shape[0] not in (0, n_terms):
        raise IndexFormatError(f"{path}: {BOUNDS_FILE} holds {bounds.dtype} {bounds.shape}, expected float64 "
                               f"({n_terms},) for a vocabulary of {n_terms} terms; run `medrag index verify`, "
                               "then rebuild the index")
    return bounds
