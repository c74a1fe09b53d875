"""``build_index``: corpora → BM25 (bm25s) + dense vectors (.npy) + FAISS index + manifest (last).

Layout of an index directory::

    indexes/default/
      manifest.json            # written last, atomically; its absence means the build is incomplete
      bm25/                    # bm25s files (CSC arrays, vocab, params) + term_bounds.medrag.npy (medrag's)
      dense/vectors.npy        # float32 (rows, dim), row i = corpus row i
      dense/vectors.json       # what the vectors were encoded with (lets a rebuild skip encoding)
      dense/faiss.index        # FAISS index by factory string (or dense/faiss-NNN.index: FaissConfig.shards)

A build first removes ``manifest.json``; a killed build resumes encoding at the first unfinished shard.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import EncoderConfig, FaissConfig, IndexConfig, ScaleConfig, config_to_dict
from ..errors import IndexFormatError, InputError
from ..ingest.store import Corpus
from ..manifest import MANIFEST_NAME, atomic_write_json, fingerprint, sha256_file
from ..scale.ray_engine import ray_session
from .bm25 import BM25_FILES, build_bm25
from .bm25_bounds import BOUNDS_FILE
from .bm25_parts import build_bm25_in_parts, merge_parts
from .dense import encode_to_shards, merge_shards, pending_shards, prepare_shard_dir, shard_paths
from .encoder import encoder_spec, load_encoder
from .faiss_files import FAISS_FILE, write_faiss
from .manifest import corpus_refs, write_index_manifest
from .rows import part_ranges, passage_texts, row_batches, row_passages, row_texts
from .tokenizer import tokenizer_spec
from .workers import build_parts_ray, encode_shards_ray

__all__ = ["build_index", "passage_texts", "row_texts", "row_batches", "row_passages", "part_ranges", "BM25_DIR",
           "VECTORS", "FAISS_FILE"]

log = logging.getLogger(__name__)

BM25_DIR = "bm25"
VECTORS = "dense/vectors.npy"
VECTORS_INFO = "dense/vectors.json"


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


def _build_sparse(corpus: Corpus, out: Path, config: IndexConfig, scale: ScaleConfig,
                  progress: bool) -> dict[str, Any]:
    bar = _Bar(progress, corpus.num_rows, "BM25", "chunk")
    start = time.perf_counter()
    fields = config.bm25.fields
    ranges = part_ranges(corpus.num_rows, scale.bm25_part_rows)
    try:
        if scale.engine == "ray":
            parts_dir = out / BM25_DIR / ".parts"
            parts = build_parts_ray(corpus.paths, fields, config.bm25, parts_dir, ranges, scale, bar)
            stats = merge_parts(parts, out / BM25_DIR, config.bm25)
            shutil.rmtree(parts_dir, ignore_errors=True)
        elif len(ranges) > 1:
            texts = row_batches(corpus, fields, 0, corpus.num_rows)
            stats = build_bm25_in_parts(texts, out / BM25_DIR, config.bm25, part_rows=ranges[0][2], progress=bar)
        else:
            stats = build_bm25(row_batches(corpus, fields, 0, corpus.num_rows), out / BM25_DIR, config.bm25,
                               progress=bar)
            stats["parts"] = 1
    finally:
        bar.close()
    stats["build_seconds"] = round(time.perf_counter() - start, 3)
    return {
        "dir": BM25_DIR,
        "tokenizer": tokenizer_spec(config.bm25),
        "params": config_to_dict(config.bm25),
        "stats": stats,
    }


def _encode(corpus: Corpus, out: Path, encoder: EncoderConfig, scale: ScaleConfig, progress: bool,
            leg_dir: str = "dense") -> int:
    """Encode every row into ``<leg_dir>/vectors.npy`` (resumable); returns the dimension."""
    key = {"encoder": encoder_spec(encoder), "corpora": list(corpus.fingerprints)}
    info_path, vectors_path = out / leg_dir / "vectors.json", out / leg_dir / "vectors.npy"
    reusable = _reusable_vectors(vectors_path, info_path, key, corpus.num_rows)
    if reusable is not None:
        log.info("vectors already encoded for this corpus and encoder: reusing %s", vectors_path)
        return reusable
    info_path.unlink(missing_ok=True)
    bar = _Bar(progress, corpus.num_rows, "Encode" if leg_dir == "dense" else f"Encode {leg_dir}", "chunk")
    runtime = None  # the runtime backend "auto" resolved to (recorded beside the vectors)
    try:
        if scale.engine == "ray":
            shards = _encode_ray(corpus, out / leg_dir / "shards", encoder, scale, key, bar)
        else:
            model = load_encoder(encoder)
            runtime = getattr(model, "backend", None)
            shards = encode_to_shards(
                out / leg_dir / "shards", corpus.num_rows, lambda a, b: row_passages(corpus, encoder, a, b),
                model.encode_passages, key=key, shard_rows=encoder.shard_rows, progress=bar,
            )
    finally:
        bar.close()
    dim = int(np.load(shards[0], mmap_mode="r").shape[1])
    merge_shards(shards, vectors_path, corpus.num_rows, dim)
    shutil.rmtree(out / leg_dir / "shards", ignore_errors=True)
    atomic_write_json(info_path, {"key": key, "rows": corpus.num_rows, "dim": dim, "encoder_runtime": runtime,
                                  "size": vectors_path.stat().st_size, "sha256": sha256_file(vectors_path)})
    return dim


def _reusable_vectors(vectors_path: Path, info_path: Path, key: dict[str, Any], rows: int) -> int | None:
    """The dimension of an earlier run's ``vectors.npy`` when it may be reused: same encoder and corpora, and
    the file still has the size and sha256 recorded when it was written (a corrupted file is re-encoded)."""
    if not (vectors_path.is_file() and info_path.is_file()):
        return None
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict) or info.get("key") != key or info.get("rows") != rows:
        return None
    if info.get("size") != vectors_path.stat().st_size or info.get("sha256") != sha256_file(vectors_path):
        log.warning("%s does not match the hash recorded when it was written: encoding again", vectors_path)
        return None
    return int(info["dim"])


def _encode_ray(corpus: Corpus, shard_dir: Path, encoder: EncoderConfig, scale: ScaleConfig,
                key: dict[str, Any], bar: _Bar) -> list[Path]:
    rows, shard_rows = corpus.num_rows, encoder.shard_rows
    prepare_shard_dir(shard_dir, rows, key=key, shard_rows=shard_rows)
    todo = pending_shards(shard_dir, rows, shard_rows)
    bar(rows - sum(b - a for _, a, b in todo))
    encode_shards_ray(corpus.paths, encoder, shard_dir, todo, scale, bar)
    return shard_paths(shard_dir, rows, shard_rows)


def _import_vectors(source: Path, corpus: Corpus, out: Path) -> int:
    """Copy precomputed passage vectors (a ``.npy`` of shape (rows, dim), row i = corpus row i)."""
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
    corpus: Corpus, out: Path, encoder: EncoderConfig, faiss: FaissConfig, scale: ScaleConfig, progress: bool,
    vectors_file: Path | None, leg_dir: str = "dense",
) -> dict[str, Any]:
    start = time.perf_counter()
    if vectors_file:
        dim = _import_vectors(vectors_file, corpus, out)
    else:
        dim = _encode(corpus, out, encoder, scale, progress, leg_dir)
    encoded = time.perf_counter()
    vectors = np.load(out / leg_dir / "vectors.npy", mmap_mode="r")
    bar = _Bar(progress, corpus.num_rows, "FAISS", "vec")
    try:
        faiss_record = write_faiss(vectors, faiss, encoder.metric, out, progress=bar, leg_dir=leg_dir)
    finally:
        bar.close()
    seconds = {"vectors": round(encoded - start, 3), "faiss": round(time.perf_counter() - encoded, 3)}
    return {
        "encoder": config_to_dict(encoder),
        "dim": dim,
        "metric": encoder.metric,
        "vectors": f"{leg_dir}/vectors.npy",
        "vectors_source": "precomputed" if vectors_file else "encoded",
        "faiss": faiss_record,
        "build_seconds": seconds,
    }


def _build_legs(corpus: Corpus, out: Path, config: IndexConfig, scale: ScaleConfig,
                progress: bool) -> list[dict[str, Any]]:
    """The extra dense legs (``config.legs``), each under ``dense-<name>/``."""
    records = []
    for leg in config.legs:
        record = _build_dense(corpus, out, leg.encoder, leg.faiss, scale, progress, None, leg_dir=f"dense-{leg.name}")
        records.append({"name": leg.name, "dir": f"dense-{leg.name}", **record})
    return records


def _prepare(out: Path, config: IndexConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    shutil.rmtree(out / BM25_DIR, ignore_errors=True)
    wanted = {"dense", *(f"dense-{leg.name}" for leg in config.legs)} if config.dense else set()
    for leg_dir in [p for p in out.glob("dense*") if p.is_dir()]:
        if leg_dir.name not in wanted:
            shutil.rmtree(leg_dir, ignore_errors=True)
        for old in leg_dir.glob("faiss*.index") if leg_dir.is_dir() else ():
            old.unlink()


def _session(scale: ScaleConfig) -> Any:
    """One Ray session for the whole build (``engine="ray"``), nothing for the local engine."""
    if scale.engine != "ray":
        return contextlib.nullcontext()
    return ray_session(scale)


def build_index(
    corpora: Sequence[str | Path],
    out: str | Path,
    config: IndexConfig | None = None,
    *,
    progress: bool = True,
    vectors: str | Path | None = None,
    scale: ScaleConfig | None = None,
) -> Path:
    """Build a hybrid index of ``corpora`` (rows numbered in the order given) into ``out``; returns ``out``.

    BM25 always; dense vectors and FAISS when ``config.dense``. ``vectors``: a ``.npy`` of precomputed passage
    embeddings (row i = corpus row i) used instead of encoding; ``config.encoder`` must then describe the
    matching query encoder. ``scale``: how the build runs (``engine="ray"``: BM25 parts and encoding as Ray
    Data stages; BM25 in parts of ``bm25_part_rows``) — the index is the same either way. The manifest is
    written last.
    """
    config = config or IndexConfig()
    scale = scale or ScaleConfig()
    if isinstance(corpora, (str, Path)):
        corpora = [corpora]
    corpus = Corpus.open_many(list(corpora))
    if corpus.num_rows == 0:
        raise IndexFormatError(f"corpus {', '.join(map(str, corpora))} holds no chunks: nothing to index")
    out = Path(out)
    _prepare(out, config)
    started = time.perf_counter()
    with _session(scale):
        sparse = _build_sparse(corpus, out, config, scale, progress)
        files = [f"{BM25_DIR}/{name}" for name in (*BM25_FILES, BOUNDS_FILE)]
        dense, legs = None, []
        if config.dense:
            dense = _build_dense(corpus, out, config.encoder, config.faiss, scale, progress,
                                 Path(vectors) if vectors else None)
            files += [VECTORS, *dense["faiss"]["files"]]
            legs = _build_legs(corpus, out, config, scale, progress)
            for leg in legs:
                files += [leg["vectors"], *leg["faiss"]["files"]]
    body: dict[str, Any] = {
        "corpora": corpus_refs(corpus, out),
        "rows": corpus.num_rows,
        "config": config_to_dict(config),
        "bm25": sparse,
        "dense": dense,
        **({"legs": legs} if legs else {}),
        "fusion": config_to_dict(config.fusion),
        "modes": (["hybrid", "bm25", "dense", *(leg["name"] for leg in legs)] if dense else ["bm25"]),
        "build": {"engine": scale.engine, "address": scale.address, "bm25_part_rows": scale.bm25_part_rows,
                  "seconds": round(time.perf_counter() - started, 3)},
    }
    body["fingerprint"] = fingerprint(
        {"corpora": [c["fingerprint"] for c in body["corpora"]], "config": body["config"]}
    )
    write_index_manifest(out, body, files)
    log.info("index written to %s (%d rows)", out, corpus.num_rows)
    return out
