"""The 30-chunk index fixture (tests/fixtures/index/chunks.jsonl) as medrag chunks, shared by the index tests."""

from __future__ import annotations

import json
from pathlib import Path

from medrag.types import Chunk, Metadata

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "index" / "chunks.jsonl"


def fixture_chunks() -> list[Chunk]:
    """Chunks numbered per document in file order (``doc#0``, ``doc#1`` …)."""
    seen: dict[str, int] = {}
    chunks = []
    for line in FIXTURE.read_text().splitlines():
        r = json.loads(line)
        pos = seen[r["doc_id"]] = seen.get(r["doc_id"], -1) + 1
        chunks.append(Chunk(f"{r['doc_id']}#{pos}", r["doc_id"], r["source"], r["title"], r["section"], r["text"],
                            pos, Metadata(year=r["year"])))
    return chunks
