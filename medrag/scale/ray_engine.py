"""The Ray engine: ingest units, BM25 parts and encoding shards as Ray Data ``map_batches`` stages.

Each stage works on small work items (a unit of input files, a BM25 row range, an encoding shard) and writes
the same files the local engine writes — unit shards + receipts, ``bm25/.parts/part-NNNNN``,
``dense/shards/shard-NNNNN.npy`` — straight from the worker, so only small records travel through Ray's object
store. The driver then finishes exactly as the local build does (corpus finalize, BM25 merge, vector merge,
FAISS, manifest), which is why the results are identical. Workers must see the corpus and output paths: on a
cluster, a shared filesystem mounted at the same path on every node (NFS, Lustre, EFS …).

Encoding runs in an actor pool (``ActorPoolStrategy``): each actor loads the encoder once; with
``gpus_per_actor`` > 0 each actor reserves that share of a GPU and encodes on ``cuda``. Parsing and BM25
parts run as tasks (one CPU each). The work itself comes from the caller — ``ingest.pipeline.UnitRunner``,
``index.workers.PartRunner`` / ``ShardEncoder`` — as plain classes, callable without Ray: this module knows how
to map items over Ray, not what ingest or indexing is (it imports neither).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .._optional import require
from ..config import EncoderConfig, ScaleConfig

__all__ = ["ray_session", "ItemWorker", "run_items", "encode_plan"]

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


# -------------------------------------------------------------------------------------------- items


class ItemWorker:
    """Runs ``factory(**kwargs)`` once per Ray actor, then calls it with each work item's fields; the
    results travel back JSON-encoded (small records only: the work writes its files itself)."""

    def __init__(self, factory: Callable[..., Callable[..., Any]], kwargs: dict[str, Any]) -> None:
        self.work = factory(**kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = list(batch)
        rows = zip(*(_column(batch, n) for n in names), strict=True)
        results = [json.dumps(self.work(**dict(zip(names, values, strict=True)))) for values in rows]
        return {"result": np.array(results, dtype=object)}


def run_items(items: Sequence[dict[str, int]], factory: Callable[..., Callable[..., Any]],
              kwargs: dict[str, Any], scale: ScaleConfig, *, actors: int | None = None,
              gpus: float = 0.0) -> Iterator[Any]:
    """``factory(**kwargs)(**item)`` for every item, on Ray (one CPU each; ``actors`` workers, default an
    autoscaling pool; ``gpus`` per actor); yields the results in completion order."""
    if not items:
        return
    with ray_session(scale) as ray:
        pool = ray.data.ActorPoolStrategy(size=actors) if actors else ray.data.ActorPoolStrategy(min_size=1)
        ds = _items(ray, items).map_batches(
            ItemWorker, batch_size=1, num_cpus=1, num_gpus=gpus or None, compute=pool,
            fn_constructor_kwargs={"factory": factory, "kwargs": kwargs},
        )
        for row in ds.iter_rows():
            yield json.loads(row["result"])


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
