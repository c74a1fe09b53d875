"""FAISS on disk: one index file, or ``FaissConfig.shards`` files searched together.

Sharded: the rows are split into contiguous ranges of (nearly) equal size; one empty index is trained once on
the seeded sample and cloned per shard, so every shard shares the same coarse quantizer and codebooks; shard
``i`` holds rows ``[start_i, stop_i)`` and is saved as ``dense/faiss-NNN.index``. Loading wraps them in a
``faiss.IndexShards`` with successive ids (shard ``i``'s local id ``j`` = corpus row ``start_i + j``), queried
in parallel threads and merged by FAISS; with ``device="cuda"`` shard ``i`` goes to GPU ``i % n_gpus``
(``cuda:N`` puts every shard on GPU N). Each shard can be built, copied and memory-mapped on its own.

The manifest's ``dense.faiss`` records the config, the files, ``ntotal``, the rows the index was trained on,
the bytes on disk and bytes per vector, so a capacity plan can be read off a built index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FaissConfig, config_to_dict
from ..errors import IndexFormatError
from .dense import (
    _new_index,
    build_faiss,
    faiss_module,
    load_faiss,
    resolve_faiss_device,
    to_gpu,
    train_faiss,
    train_sample_rows,
)

__all__ = ["FAISS_FILE", "shard_bounds", "shard_file", "write_faiss", "load_dense_faiss"]

log = logging.getLogger(__name__)

FAISS_FILE = "dense/faiss.index"


def shard_file(i: int, leg_dir: str = "dense") -> str:
    return f"{leg_dir}/faiss-{i:03d}.index"


def shard_bounds(n_rows: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous ``(start, stop)`` row ranges of (nearly) equal size covering ``n_rows``."""
    edges = np.linspace(0, n_rows, shards + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _write(faiss: Any, index: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    faiss.write_index(index, str(tmp))
    tmp.replace(path)


def write_faiss(vectors: np.ndarray, config: FaissConfig, metric: str, index_dir: Path,
                progress: Callable[[int], None] | None = None, leg_dir: str = "dense") -> dict[str, Any]:
    """Build and save the FAISS index (or shards) of ``vectors`` under ``index_dir/leg_dir``; returns the
    manifest's ``faiss`` record."""
    faiss = faiss_module()
    n = vectors.shape[0]
    for old in list((index_dir / leg_dir).glob("faiss*.index")):
        old.unlink()
    needs_training = _needed_training(faiss, vectors.shape[1], config)
    trained = train_faiss(vectors, config, metric)
    single = f"{leg_dir}/faiss.index"
    if config.shards == 1:
        files = [single]
        _write(faiss, build_faiss(vectors, config, metric, progress=progress, trained=trained),
               index_dir / single)
    else:
        files = []
        for i, (start, stop) in enumerate(shard_bounds(n, config.shards)):
            shard = build_faiss(vectors, config, metric, progress=progress, rows=(start, stop), trained=trained)
            files.append(shard_file(i, leg_dir))
            _write(faiss, shard, index_dir / files[-1])
    size = sum((index_dir / f).stat().st_size for f in files)
    record = {**config_to_dict(config), "files": files, "ntotal": int(n), "bytes": size,
              "bytes_per_vector": round(size / n, 2) if n else 0.0,
              "trained_on": int(train_sample_rows(n, config).size) if needs_training else 0}
    if config.shards == 1:
        record["file"] = single
    return record


def _needed_training(faiss: Any, dim: int, config: FaissConfig) -> bool:
    return not _new_index(faiss, dim, config, "ip").is_trained


def load_dense_faiss(index_dir: Path, record: dict[str, Any], config: FaissConfig) -> Any:
    """The searchable FAISS index of a manifest ``faiss`` record: one index, or ``IndexShards`` over files."""
    files = record.get("files") or [record["file"]]
    if len(files) == 1:
        return load_faiss(index_dir / files[0], config)
    faiss = faiss_module()
    cpu = FaissConfig(**{**config_to_dict(config), "device": "cpu"})
    parts = [load_faiss(index_dir / f, cpu) for f in files]
    gpu = resolve_faiss_device(config.device, faiss)
    if gpu is not None:
        n_gpus = faiss.get_num_gpus()
        every = config.device == "cuda"
        parts = [to_gpu(faiss, p, i % n_gpus if every else gpu) for i, p in enumerate(parts)]
    shards = faiss.IndexShards(parts[0].d, True, True)
    for part in parts:
        shards.add_shard(part)
    shards.referenced_objects = parts  # keep the shards alive as long as the wrapper
    if shards.ntotal != record.get("ntotal", shards.ntotal):
        raise IndexFormatError(f"{index_dir}: FAISS shards hold {shards.ntotal} vectors, manifest says "
                               f"{record['ntotal']}; rebuild")
    return shards
