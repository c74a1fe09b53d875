"""Out-of-core BM25: the corpus is indexed in parts over row ranges, then merged into one bm25s index.

A *part* holds one row range as compact (term, tf) arrays with its own vocabulary (terms in order of first
appearance), saved as ``.npy`` files plus ``vocab.json``; ``part.json`` is written last. Parts do not depend on
each other, so they can be built one after another (bounded memory) or in parallel (Ray tasks).

``merge_parts`` maps every part's terms onto one vocabulary — walking the parts in row order and adding each
part's terms in its own first-seen order, which reproduces the single-shot build's term ids exactly — computes
the global document frequencies, idf and average length, and writes the scores straight into memory-mapped
``data``/``indices`` arrays, a slice of documents at a time. Anonymous memory is therefore one part (during
the build) or one slice plus vocabulary-sized arrays (during the merge), never the whole index. The per-term
score bounds (``bm25_bounds``) are gathered slice by slice as the scores are placed, so ``data`` is not read
back. The result is bm25s' own directory format (plus the bounds file) and equals the single-shot
``build_bm25`` file for file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import BM25Config
from ..errors import IndexFormatError
from ..manifest import atomic_write_json
from .bm25 import _Batch, _idf, _place, _Postings, scored, write_bm25_files
from .bm25_bounds import BoundsAccumulator
from .tokenizer import BiomedicalTokenizer

__all__ = ["PartBuilder", "build_part", "merge_parts", "build_bm25_in_parts", "PART_DONE"]

log = logging.getLogger(__name__)

PART_DONE = "part.json"
_ARRAYS = ("terms", "tfs", "per_doc", "lengths")
#: documents placed per step of the merge (bounds the merge's working memory)
_MERGE_DOCS = 65_536


class PartBuilder:
    """Tokenises batches of one row range as they come (texts are not kept) and saves them as a part."""

    def __init__(self, config: BM25Config) -> None:
        self.term_ids = BiomedicalTokenizer(config).term_ids()
        self.postings = _Postings([])

    @property
    def rows(self) -> int:
        return self.postings.n_docs

    def add(self, batch: Sequence[str]) -> int:
        flat, lengths = self.term_ids.batch(batch)
        self.postings.add(flat, lengths)
        return len(lengths)

    def save(self, part_dir: str | Path) -> dict[str, Any]:
        """Write the part (``part.json`` last) and release its arrays; returns part.json's content."""
        part_dir = Path(part_dir)
        shutil.rmtree(part_dir, ignore_errors=True)
        part_dir.mkdir(parents=True)
        postings = self.postings
        _save_concat(postings.batches, part_dir)
        postings.batches.clear()
        with open(part_dir / "vocab.json", "w", encoding="utf-8") as fh:
            json.dump(list(self.term_ids.term_to_id), fh, ensure_ascii=False)
        info = {"rows": postings.n_docs, "nonzeros": postings.nonzeros, "total_length": postings.total_length}
        atomic_write_json(part_dir / PART_DONE, info)
        return info


def build_part(batches: Iterable[Sequence[str]], part_dir: str | Path, config: BM25Config,
               *, progress: Any = None) -> dict[str, Any]:
    """Tokenise ``batches`` of texts (one row range, in row order) into a part directory; returns part.json."""
    builder = PartBuilder(config)
    for batch in batches:
        n = builder.add(batch)
        if progress is not None:
            progress(n)
    return builder.save(part_dir)


def _save_concat(batches: list[_Batch], part_dir: Path) -> None:
    """Each array of the part's batches written into one ``.npy`` (filled batch by batch: no in-memory copy)."""
    tf_type = np.uint32 if any(b.tfs.dtype == np.uint32 for b in batches) else np.uint16
    dtypes = {"terms": np.int32, "tfs": tf_type, "per_doc": np.int32, "lengths": np.float32}
    for name in _ARRAYS:
        total = sum(getattr(b, name).size for b in batches)
        out = np.lib.format.open_memmap(part_dir / f"{name}.npy", mode="w+", dtype=dtypes[name], shape=(total,))
        pos = 0
        for b in batches:
            values = getattr(b, name)
            out[pos: pos + values.size] = values
            pos += values.size
        out.flush()
        del out


def _load_part(part_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not (part_dir / PART_DONE).is_file():
        raise IndexFormatError(f"{part_dir}: BM25 part is incomplete (no {PART_DONE}); rebuild")
    info = json.loads((part_dir / PART_DONE).read_text())
    arrays = {name: np.load(part_dir / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _ARRAYS}
    return info, arrays


def _global_vocab(part_dirs: Sequence[Path]) -> tuple[dict[str, int], list[np.ndarray]]:
    """One vocabulary over the parts (part order, then each part's first-seen order) and each part's map."""
    vocab: dict[str, int] = {}
    remaps = []
    for part_dir in part_dirs:
        with open(part_dir / "vocab.json", encoding="utf-8") as fh:
            local = json.load(fh)
        remaps.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in local), dtype=np.int32,
                                  count=len(local)))
    return vocab, remaps


def _open_npy(path: Path, dtype: Any, size: int) -> np.memmap:
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(size,))


def merge_parts(part_dirs: Sequence[str | Path], out: str | Path, config: BM25Config) -> dict[str, Any]:
    """Merge parts (in row order) into a bm25s index at ``out``; returns the same statistics as ``build_bm25``."""
    started = time.perf_counter()
    parts = [Path(p) for p in part_dirs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab, remaps = _global_vocab(parts)
    infos = [_load_part(p)[0] for p in parts]
    n_docs = sum(int(i["rows"]) for i in infos)
    nonzeros = sum(int(i["nonzeros"]) for i in infos)
    total_length = sum(float(i["total_length"]) for i in infos)
    df = np.zeros(len(vocab), dtype=np.int64)
    for part_dir, remap in zip(parts, remaps, strict=True):
        terms = _load_part(part_dir)[1]["terms"]
        for lo in range(0, terms.size, 1 << 24):
            df += np.bincount(remap[terms[lo: lo + (1 << 24)]], minlength=len(vocab))
    idf = _idf(df, n_docs, config.idf_method or config.method)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    del df
    cursor = indptr[:-1].copy()
    data = _open_npy(out / ".data.tmp.npy", np.float32, nonzeros)
    indices = _open_npy(out / ".indices.tmp.npy", np.int32, nonzeros)
    bounds = BoundsAccumulator(len(vocab))  # gathered as scores are placed: data is not read back
    scoring = {"idf": idf, "config": config, "avg_len": (total_length / n_docs) if n_docs else 1.0,
               "bounds": bounds}
    first_doc = 0
    for part_dir, remap in zip(parts, remaps, strict=True):
        arrays = _load_part(part_dir)[1]
        first_doc = _place_part(arrays, remap, first_doc, scoring, cursor, data, indices)
    data.flush()
    indices.flush()
    write_bm25_files(out, {"indptr": indptr}, vocab, n_docs, config, bounds=bounds.result())
    del data, indices
    os.replace(out / ".data.tmp.npy", out / "data.csc.index.npy")
    os.replace(out / ".indices.tmp.npy", out / "indices.csc.index.npy")
    return {
        "documents": n_docs,
        "vocabulary": len(vocab),
        "nonzeros": nonzeros,
        "avg_doc_terms": round(total_length / n_docs if n_docs else 0.0, 3),
        "parts": len(parts),
        "merge_seconds": round(time.perf_counter() - started, 3),
    }


def _place_part(arrays: dict[str, np.ndarray], remap: np.ndarray, first_doc: int, scoring: dict[str, Any],
                cursor: np.ndarray, data: np.ndarray, indices: np.ndarray) -> int:
    """Score and place one part, ``_MERGE_DOCS`` documents at a time; returns the next document number."""
    per_doc = np.asarray(arrays["per_doc"])
    offsets = np.zeros(per_doc.size + 1, dtype=np.int64)
    np.cumsum(per_doc, out=offsets[1:])
    config = scoring["config"]
    for d0 in range(0, per_doc.size, _MERGE_DOCS):
        d1 = min(d0 + _MERGE_DOCS, per_doc.size)
        lo, hi = int(offsets[d0]), int(offsets[d1])
        batch = _Batch(remap[arrays["terms"][lo:hi]], np.asarray(arrays["tfs"][lo:hi]), per_doc[d0:d1],
                       np.asarray(arrays["lengths"][d0:d1]))
        _place(batch, first_doc + d0, scored(batch, scoring["idf"], scoring["avg_len"], config), cursor, data,
               indices, scoring["bounds"])
    return first_doc + per_doc.size


def build_bm25_in_parts(texts: Iterable[Sequence[str]], out: str | Path, config: BM25Config | None = None,
                        *, part_rows: int, progress: Any = None) -> dict[str, Any]:
    """``build_bm25`` out of core: batches are gathered into parts of at least ``part_rows`` rows (whole
    batches), each written to ``out/.parts`` and released, then merged. Same files, same arrays."""
    config = config or BM25Config()
    out = Path(out)
    parts_root = out / ".parts"
    shutil.rmtree(parts_root, ignore_errors=True)
    part_dirs: list[Path] = []
    builder = PartBuilder(config)
    for batch in texts:
        n = builder.add(batch)
        if progress is not None:
            progress(n)
        if builder.rows >= part_rows:
            part_dirs.append(parts_root / f"part-{len(part_dirs):05d}")
            builder.save(part_dirs[-1])
            builder = PartBuilder(config)
    if builder.rows or not part_dirs:
        part_dirs.append(parts_root / f"part-{len(part_dirs):05d}")
        builder.save(part_dirs[-1])
    del builder  # its word/term dictionaries are not needed by the merge
    log.info("merging %d BM25 parts into %s", len(part_dirs), out)
    stats = merge_parts(part_dirs, out, config)
    shutil.rmtree(parts_root, ignore_errors=True)
    return stats
