"""``build_index``: corpora → BM25 (bm25s) + dense vectors (.npy) + FAISS index + manifest (last).

Layout of an index directory::

    indexes/default/
      manifest.json            # written last, atomically; its absence means the build is incomplete
      bm25/                    # bm25s files (CSC arrays, vocab, params)
      dense/vectors.npy        # float32 (rows, dim), row i = corpus row i
      dense/vectors.json       # what the vectors were encoded with (lets a rebuild skip encoding)
      dense/faiss.index        # FAISS index by factory string

A build first removes ``manifest.json``; a killed build resumes encoding at the first unfinished shard.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import IndexConfig, config_to_dict
from ..errors import IndexFormatError, InputError
from ..ingest.store import Corpus
from ..manifest import MANIFEST_NAME, atomic_write_json, fingerprint
from .bm25 import BM25_FILES, build_bm25
from .manifest import corpus_refs, write_index_manifest
from .tokenizer import tokenizer_spec

__all__ = ["build_index", "passage_texts", "BM25_DIR", "VECTORS", "FAISS_FILE"]

log = logging.getLogger(__name__)

BM25_DIR = "bm25"
VECTORS = "dense/vectors.npy"
VECTORS_INFO = "dense/vectors.json"
FAISS_FILE = "dense/faiss.index"
_BATCH = 8192


def passage_texts(batch: Any, fields: Sequence[str]) -> list[str]:
    """The indexed text of each row of an Arrow batch: the non-empty ``fields`` joined by newlines."""
    columns = [batch.column(batch.schema.get_field_index(f)).to_pylist() for f in fields]
    return ["\n".join(part for part in parts if part) for parts in zip(*columns, strict=True)]


def _texts(corpus: Corpus, fields: Sequence[str]) -> Iterator[list[str]]:
    for batch in corpus.iter_batches(columns=list(fields), batch_size=_BATCH):
        yield passage_texts(batch, fields)


class _Bar:
    """A tqdm bar on stderr (or nothing), used as a ``progress(n)`` callback."""

    def __init__(self, enabled: bool, total: int, desc: str, unit: str) -> None:
        self.bar = None
        if enabled:
            import sys

            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _build_sparse(corpus: Corpus, out: Path, config: IndexConfig, progress: bool) -> dict[str, Any]:
    bar = _Bar(progress, corpus.num_rows, "BM25", "chunk")
    start = time.perf_counter()
    try:
        stats = build_bm25(_texts(corpus, config.bm25.fields), out / BM25_DIR, config.bm25, progress=bar)
    finally:
        bar.close()
    stats["build_seconds"] = round(time.perf_counter() - start, 3)
    return {
        "dir": BM25_DIR,
        "tokenizer": tokenizer_spec(config.bm25),
        "params": config_to_dict(config.bm25),
        "stats": stats,
    }


def _encode(corpus: Corpus, out: Path, config: IndexConfig, progress: bool) -> int:
    """Encode every row into ``dense/vectors.npy`` (resumable); returns the dimension."""
    from .dense import encode_to_shards, merge_shards
    from .encoder import encoder_spec, load_encoder

    key = {"encoder": encoder_spec(config.encoder), "corpora": list(corpus.fingerprints)}
    info_path, vectors_path = out / VECTORS_INFO, out / VECTORS
    if vectors_path.is_file() and info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("key") == key and info.get("rows") == corpus.num_rows:
            log.info("vectors already encoded for this corpus and encoder: reusing %s", vectors_path)
            return int(info["dim"])
    info_path.unlink(missing_ok=True)
    encoder = load_encoder(config.encoder)
    fields = config.encoder.fields
    table = corpus.table.select(list(fields))

    def texts_for(start: int, stop: int) -> list[str]:
        part = table.slice(start, stop - start).combine_chunks()
        return passage_texts(part.to_batches()[0], fields) if part.num_rows else []

    bar = _Bar(progress, corpus.num_rows, "Encode", "chunk")
    try:
        shards = encode_to_shards(
            out / "dense" / "shards", corpus.num_rows, texts_for, encoder.encode_passages,
            key=key, shard_rows=config.encoder.shard_rows, progress=bar,
        )
    finally:
        bar.close()
    merge_shards(shards, vectors_path, corpus.num_rows, encoder.dim)
    shutil.rmtree(out / "dense" / "shards", ignore_errors=True)
    atomic_write_json(info_path, {"key": key, "rows": corpus.num_rows, "dim": encoder.dim})
    return encoder.dim


def _import_vectors(source: Path, corpus: Corpus, out: Path) -> int:
    """Copy precomputed passage vectors (a ``.npy`` of shape (rows, dim), row i = corpus row i)."""
    from .dense import merge_shards

    try:
        array = np.load(source, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{source}: not a readable .npy file ({exc})") from exc
    if array.ndim != 2 or array.shape[0] != corpus.num_rows:
        raise InputError(f"{source}: vectors have shape {array.shape}, expected ({corpus.num_rows}, dim)")
    (out / "dense").mkdir(parents=True, exist_ok=True)
    (out / VECTORS_INFO).unlink(missing_ok=True)
    merge_shards([source], out / VECTORS, corpus.num_rows, int(array.shape[1]))
    return int(array.shape[1])


def _build_dense(
    corpus: Corpus, out: Path, config: IndexConfig, progress: bool, vectors_file: Path | None
) -> dict[str, Any]:
    from .dense import build_faiss, faiss_module

    start = time.perf_counter()
    dim = _import_vectors(vectors_file, corpus, out) if vectors_file else _encode(corpus, out, config, progress)
    encoded = time.perf_counter()
    vectors = np.load(out / VECTORS, mmap_mode="r")
    bar = _Bar(progress, corpus.num_rows, "FAISS", "vec")
    try:
        index = build_faiss(vectors, config.faiss, config.encoder.metric, progress=bar)
    finally:
        bar.close()
    faiss = faiss_module()
    tmp = out / "dense" / ".faiss.index.tmp"
    faiss.write_index(index, str(tmp))
    tmp.replace(out / FAISS_FILE)
    seconds = {"vectors": round(encoded - start, 3), "faiss": round(time.perf_counter() - encoded, 3)}
    return {
        "encoder": config_to_dict(config.encoder),
        "dim": dim,
        "metric": config.encoder.metric,
        "vectors": VECTORS,
        "vectors_source": "precomputed" if vectors_file else "encoded",
        "faiss": {**config_to_dict(config.faiss), "file": FAISS_FILE, "ntotal": int(index.ntotal)},
        "build_seconds": seconds,
    }


def _prepare(out: Path, config: IndexConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    shutil.rmtree(out / BM25_DIR, ignore_errors=True)
    (out / FAISS_FILE).unlink(missing_ok=True)
    if not config.dense:
        shutil.rmtree(out / "dense", ignore_errors=True)


def build_index(
    corpora: Sequence[str | Path],
    out: str | Path,
    config: IndexConfig | None = None,
    *,
    progress: bool = True,
    vectors: str | Path | None = None,
) -> Path:
    """Build a hybrid index of ``corpora`` (rows numbered in the order given) into ``out``; returns ``out``.

    BM25 always; dense vectors and FAISS when ``config.dense``. ``vectors``: a ``.npy`` of precomputed passage
    embeddings (row i = corpus row i) used instead of encoding; ``config.encoder`` must then describe the
    matching query encoder. The manifest is written last.
    """
    config = config or IndexConfig()
    if isinstance(corpora, (str, Path)):
        corpora = [corpora]
    corpus = Corpus.open_many(list(corpora))
    if corpus.num_rows == 0:
        raise IndexFormatError(f"corpus {', '.join(map(str, corpora))} holds no chunks: nothing to index")
    out = Path(out)
    _prepare(out, config)
    sparse = _build_sparse(corpus, out, config, progress)
    files = [f"{BM25_DIR}/{name}" for name in BM25_FILES]
    dense = None
    if config.dense:
        dense = _build_dense(corpus, out, config, progress, Path(vectors) if vectors else None)
        files += [VECTORS, FAISS_FILE]
    body = {
        "corpora": corpus_refs(corpus, out),
        "rows": corpus.num_rows,
        "config": config_to_dict(config),
        "bm25": sparse,
        "dense": dense,
        "fusion": config_to_dict(config.fusion),
        "modes": ["hybrid", "bm25", "dense"] if dense else ["bm25"],
    }
    body["fingerprint"] = fingerprint(
        {"corpora": [c["fingerprint"] for c in body["corpora"]], "config": body["config"]}
    )
    write_index_manifest(out, body, files)
    log.info("index written to %s (%d rows)", out, corpus.num_rows)
    return out
