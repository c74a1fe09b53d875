"""A BM25-only index over the reason fixture's chunks (tests/fixtures/reason/chunks.jsonl), for the ask tests."""

from __future__ import annotations

from pathlib import Path

from medrag.config import IndexConfig
from medrag.index import build_index
from medrag.ingest.store import write_corpus
from medrag.reason.testing import ToyRetriever
from medrag.types import Chunk


def build_toy_index(root: Path, fixtures_dir: Path) -> Path:
    """Write ``root/corpus`` and ``root/index`` (BM25 only); returns ``root``."""
    hits = ToyRetriever.from_jsonl(fixtures_dir / "reason" / "chunks.jsonl").hits
    chunks = [Chunk(h.chunk_id, h.doc_id, h.source, h.title, h.section, h.text, int(h.chunk_id.rsplit("#", 1)[1]),
                    h.metadata) for h in hits]
    write_corpus(root / "corpus", chunks, source="toy")
    build_index([root / "corpus"], root / "index", IndexConfig(dense=False), progress=False)
    return root
