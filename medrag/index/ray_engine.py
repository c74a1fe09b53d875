"""The Ray engine: ingest units, BM25 parts and encoding shards as Ray Data ``map_batches`` stages.

Each stage works on small work items (a unit of input files, a BM25 row range, an encoding shard) and writes
the same files the local engine writes — unit shards + receipts, ``bm25/.parts/part-NNNNN``,
``dense/shards/shard-NNNNN.npy`` — straight from the worker, so only small records travel through Ray's object
store. The driver then finishes exactly as the local build does (corpus finalize, BM25 merge, vector merge,
FAISS, manifest), which is why the results are identical. Workers must see the corpus and output paths: on a
cluster, a shared filesystem mounted at the same path on every node (NFS, Lustre, EFS …).

Encoding runs in an actor pool (``ActorPoolStrategy``): each actor loads the encoder once; with
``gpus_per_actor`` > 0 each actor reserves that share of a GPU and encodes on ``cuda``. Parsing and BM25
parts run as tasks (one CPU each). The work-item functions are plain classes, callable without Ray.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..config import BM25Config, EncoderConfig, IngestConfig, ScaleConfig

__all__ = ["ray_session", "UnitWorker", "PartWorker", "EncodeWorker", "run_units", "build_parts",
           "encode_shards", "encode_plan"]

log = logging.getLogger(__name__)


def _ray() -> Any:
    require("ray.data", "ray[data]", "ray", "--engine ray")
    return require("ray", "ray[data]", "ray", "--engine ray")


@contextlib.contextmanager
def ray_session(scale: ScaleConfig) -> Iterator[Any]:
    """Ray, initialised for ``scale``: joins ``scale.address``, or starts a local instance (shut down after).

    An already initialised Ray (a notebook, a test) is used as it is and left running.
    """
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.WARNING}
    if scale.address:
        kwargs["address"] = scale.address
    else:
        kwargs.update(num_cpus=scale.num_cpus, object_store_memory=scale.object_store_memory)
    ray.init(**kwargs)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield ray
    finally:
        ray.shutdown()


def _items(ray: Any, rows: Sequence[dict[str, int]]) -> Any:
    return ray.data.from_items(list(rows), override_num_blocks=max(1, len(rows)))


def _column(batch: dict[str, np.ndarray], name: str) -> list[int]:
    return [int(v) for v in np.asarray(batch[name]).tolist()]


# ------------------------------------------------------------------------------------------- ingest


class UnitWorker:
    """Parses, chunks and shards ingest units (``pipeline.run_unit``); returns their receipts as JSON."""

    def __init__(self, units: Sequence[Any], out: str, config: IngestConfig, params_fp: str) -> None:
        self.units, self.out, self.config, self.params_fp = list(units), Path(out), config, params_fp

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..ingest.pipeline import run_unit

        receipts = [json.dumps(run_unit(self.units[i], self.out, self.config, self.params_fp))
                    for i in _column(batch, "unit")]
        return {"receipt": np.array(receipts, dtype=object)}


def run_units(todo: Sequence[Any], out: Path, config: IngestConfig, params_fp: str,
              scale: ScaleConfig) -> Iterator[dict[str, Any]]:
    """Receipts of ``todo`` units as Ray tasks finish them (in completion order)."""
    with ray_session(scale) as ray:
        ds = _items(ray, [{"unit": i} for i in range(len(todo))]).map_batches(
            UnitWorker, batch_size=1, num_cpus=1, compute=ray.data.ActorPoolStrategy(min_size=1),
            fn_constructor_kwargs={"units": list(todo), "out": str(out), "config": config,
                                   "params_fp": params_fp},
        )
        for row in ds.iter_rows():
            yield json.loads(row["receipt"])


# --------------------------------------------------------------------------------------------- bm25


class PartWorker:
    """Builds BM25 parts over row ranges of a corpus (``bm25_parts.build_part``)."""

    def __init__(self, corpora: Sequence[str], fields: Sequence[str], config: BM25Config, parts_dir: str,
                 batch_rows: int) -> None:
        self.corpora, self.fields, self.config = list(corpora), tuple(fields), config
        self.parts_dir, self.batch_rows = Path(parts_dir), batch_rows

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..ingest.store import Corpus
        from .bm25_parts import build_part
        from .build import row_batches

        corpus = Corpus.open_many(self.corpora)
        done = []
        for part, start, stop in zip(_column(batch, "part"), _column(batch, "start"), _column(batch, "stop"),
                                     strict=True):
            texts = row_batches(corpus, self.fields, start, stop, self.batch_rows)
            build_part(texts, self.parts_dir / f"part-{part:05d}", self.config)
            done.append(stop - start)
        return {"part": np.asarray(batch["part"]), "rows": np.array(done, dtype=np.int64)}


def build_parts(corpora: Sequence[Path], fields: Sequence[str], config: BM25Config, parts_dir: Path,
                ranges: Sequence[tuple[int, int, int]], batch_rows: int, scale: ScaleConfig,
                progress: Callable[[int], None] | None = None) -> list[Path]:
    """Build one BM25 part per ``(part, start, stop)`` range as Ray tasks; the part directories in row order."""
    with ray_session(scale) as ray:
        ds = _items(ray, [{"part": p, "start": a, "stop": b} for p, a, b in ranges]).map_batches(
            PartWorker, batch_size=1, num_cpus=1, compute=ray.data.ActorPoolStrategy(min_size=1),
            fn_constructor_kwargs={"corpora": [str(c) for c in corpora], "fields": tuple(fields),
                                   "config": config, "parts_dir": str(parts_dir), "batch_rows": batch_rows},
        )
        for row in ds.iter_rows():
            if progress is not None:
                progress(int(row["rows"]))
    return [parts_dir / f"part-{p:05d}" for p, _, _ in ranges]


# ------------------------------------------------------------------------------------------ encoding


class EncodeWorker:
    """Encodes corpus rows into shard files (one actor = one loaded encoder)."""

    def __init__(self, corpora: Sequence[str], encoder: EncoderConfig, shard_dir: str) -> None:
        from ..ingest.store import Corpus
        from .encoder import load_encoder

        self.corpus = Corpus.open_many(list(corpora))
        self.encoder = load_encoder(encoder)
        self.encoder_config = encoder
        self.shard_dir = Path(shard_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .build import row_passages
        from .dense import write_shard

        rows = []
        for shard, start, stop in zip(_column(batch, "shard"), _column(batch, "start"), _column(batch, "stop"),
                                      strict=True):
            vectors = self.encoder.encode_passages(row_passages(self.corpus, self.encoder_config, start, stop))
            write_shard(self.shard_dir, shard, vectors)
            rows.append(stop - start)
        return {"shard": np.asarray(batch["shard"]), "rows": np.array(rows, dtype=np.int64)}


def encode_plan(encoder: EncoderConfig, scale: ScaleConfig, cluster: dict[str, float]) -> tuple[EncoderConfig, int, float]:
    """The actors' encoder config, pool size and GPUs per actor for a cluster's resources.

    GPUs per actor: ``scale.gpus_per_actor``, else 1 when the encoder device is CUDA, else 0. Pool size:
    ``scale.encode_actors``, else one per GPU (GPU actors) or one per 2 CPUs.
    """
    gpus = scale.gpus_per_actor if scale.gpus_per_actor is not None else (
        1.0 if encoder.device.startswith("cuda") else 0.0)
    if gpus > 0:
        size = scale.encode_actors or max(1, int(cluster.get("GPU", 0) // gpus))
        encoder = dataclasses.replace(encoder, device="cuda")  # Ray sets CUDA_VISIBLE_DEVICES per actor
    else:
        size = scale.encode_actors or max(1, int(cluster.get("CPU", 1)) // 2)
        encoder = dataclasses.replace(encoder, device="cpu")
    return encoder, size, gpus


def encode_shards(corpora: Sequence[Path], encoder: EncoderConfig, shard_dir: Path,
                  todo: Sequence[tuple[int, int, int]], scale: ScaleConfig,
                  progress: Callable[[int], None] | None = None) -> None:
    """Encode the ``(shard, start, stop)`` ranges in ``todo`` into ``shard_dir`` with an actor pool."""
    if not todo:
        return
    with ray_session(scale) as ray:
        actor_encoder, size, gpus = encode_plan(encoder, scale, ray.cluster_resources())
        size = min(size, len(todo))
        log.info("encoding %d shards with %d Ray actor(s), %.2g GPU each", len(todo), size, gpus)
        ds = _items(ray, [{"shard": s, "start": a, "stop": b} for s, a, b in todo]).map_batches(
            EncodeWorker, batch_size=1, num_gpus=gpus or None, num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=size),
            fn_constructor_kwargs={"corpora": [str(c) for c in corpora], "encoder": actor_encoder,
                                   "shard_dir": str(shard_dir)},
        )
        for row in ds.iter_rows():
            if progress is not None:
                progress(int(row["rows"]))
