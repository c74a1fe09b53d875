"""Build engines (local, Ray) and out-of-core limits."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import _check

__all__ = ["ENGINES", "ScaleConfig"]

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class ScaleConfig:
    """How a build runs, not what it builds: the index or corpus is the same whatever these are.

    ``engine="ray"`` parses/chunks (``medrag corpus ingest``) and encodes and builds BM25 parts
    (``medrag index build``) through Ray Data on ``address`` (``None``: start a local Ray instance with
    ``num_cpus`` / ``object_store_memory``; ``"auto"`` or ``"ray://host:10001"``: join a cluster whose nodes
    see the same filesystem paths). ``encode_actors``: encoder actor pool size (``None``: one per GPU when
    ``gpus_per_actor`` > 0, else one per 2 CPUs). ``gpus_per_actor``: ``None`` = 1 when the encoder device is
    CUDA, else 0. ``bm25_part_rows``: BM25 is built in parts of this many rows (rounded up to whole 8,192-row
    batches) merged into one memory-mapped index, so build memory is bounded by a part, not the corpus.
    """

    engine: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    object_store_memory: int | None = None
    encode_actors: int | None = None
    gpus_per_actor: float | None = None
    bm25_part_rows: int = 1_048_576

    def __post_init__(self) -> None:
        _check(self.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        _check(self.bm25_part_rows >= 1, f"bm25_part_rows must be >= 1, got {self.bm25_part_rows}")
        _check(self.encode_actors is None or self.encode_actors >= 1, "encode_actors must be >= 1")
        _check(self.gpus_per_actor is None or self.gpus_per_actor >= 0, "gpus_per_actor must be >= 0")
        _check(self.num_cpus is None or self.num_cpus >= 1, "num_cpus must be >= 1")
        _check(self.address is None or self.engine == "ray", "--address needs --engine ray")
