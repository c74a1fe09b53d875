"""The index's work for the Ray engine (``medrag.scale.ray_engine.run_items``): BM25 parts over row ranges
and encoding shards, as plain classes callable without Ray (one instance per Ray actor)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import BM25Config, EncoderConfig, ScaleConfig
from ..ingest.store import Corpus
from ..scale.ray_engine import encode_plan, ray_session, run_items
from .bm25_parts import build_part
from .dense import write_shard
from .encoder import load_encoder
from .rows import BATCH_ROWS, row_batches, row_passages

__all__ = ["PartRunner", "ShardEncoder", "build_parts_ray", "encode_shards_ray"]

log = logging.getLogger(__name__)


class PartRunner:
    """``runner(part, start, stop)`` builds the BM25 part of rows ``[start, stop)`` (``bm25_parts.build_part``)."""

    def __init__(self, corpora: Sequence[str], fields: Sequence[str], config: BM25Config, parts_dir: str,
                 batch_rows: int = BATCH_ROWS) -> None:
        self.corpora, self.fields, self.config = list(corpora), tuple(fields), config
        self.parts_dir, self.batch_rows = Path(parts_dir), batch_rows

    def __call__(self, part: int, start: int, stop: int) -> dict[str, int]:
        corpus = Corpus.open_many(self.corpora)
        texts = row_batches(corpus, self.fields, start, stop, self.batch_rows)
        build_part(texts, self.parts_dir / f"part-{part:05d}", self.config)
        return {"part": part, "rows": stop - start}


class ShardEncoder:
    """``encoder(shard, start, stop)`` encodes rows ``[start, stop)`` into shard file ``shard`` (the encoder
    is loaded once per instance, i.e. once per Ray actor)."""

    def __init__(self, corpora: Sequence[str], encoder: EncoderConfig, shard_dir: str) -> None:
        self.corpus = Corpus.open_many(list(corpora))
        self.encoder = load_encoder(encoder)
        self.encoder_config = encoder
        self.shard_dir = Path(shard_dir)

    def __call__(self, shard: int, start: int, stop: int) -> dict[str, int]:
        vectors = self.encoder.encode_passages(row_passages(self.corpus, self.encoder_config, start, stop))
        write_shard(self.shard_dir, shard, vectors)
        return {"shard": shard, "rows": stop - start}


def build_parts_ray(corpora: Sequence[Path], fields: Sequence[str], config: BM25Config, parts_dir: Path,
                    ranges: Sequence[tuple[int, int, int]], scale: ScaleConfig,
                    progress: Callable[[int], None] | None = None) -> list[Path]:
    """One BM25 part per ``(part, start, stop)`` range as Ray tasks; the part directories in row order."""
    items = [{"part": p, "start": a, "stop": b} for p, a, b in ranges]
    kwargs: dict[str, Any] = {"corpora": [str(c) for c in corpora], "fields": tuple(fields), "config": config,
                              "parts_dir": str(parts_dir)}
    for done in run_items(items, PartRunner, kwargs, scale):
        if progress is not None:
            progress(int(done["rows"]))
    return [parts_dir / f"part-{p:05d}" for p, _, _ in ranges]


def encode_shards_ray(corpora: Sequence[Path], encoder: EncoderConfig, shard_dir: Path,
                      todo: Sequence[tuple[int, int, int]], scale: ScaleConfig,
                      progress: Callable[[int], None] | None = None) -> None:
    """Encode the ``(shard, start, stop)`` ranges in ``todo`` into ``shard_dir`` with a Ray actor pool."""
    if not todo:
        return
    with ray_session(scale) as ray:
        actor_encoder, size, gpus = encode_plan(encoder, scale, ray.cluster_resources())
        size = min(size, len(todo))
        log.info("encoding %d shards with %d Ray actor(s), %.2g GPU each", len(todo), size, gpus)
        items = [{"shard": s, "start": a, "stop": b} for s, a, b in todo]
        kwargs = {"corpora": [str(c) for c in corpora], "encoder": actor_encoder, "shard_dir": str(shard_dir)}
        for done in run_items(items, ShardEncoder, kwargs, scale, actors=size, gpus=gpus):
            if progress is not None:
                progress(int(done["rows"]))
