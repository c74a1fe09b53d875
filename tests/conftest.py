"""Shared test fixtures.

``shared_data`` is the read-only ``../shared/data`` folder beside the checkout; tests that need it skip
cleanly when it is absent (a plain clone). Project-written fixtures live in ``tests/fixtures``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = Path(os.environ.get("MEDRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def integrations_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small hybrid index (BM25 + MiniLM/FAISS) over ``fixtures/integrations/chunks.jsonl`` (26 chunks from
    three sources, with PMIDs/DOIs/years), built once per session for the integration tests."""
    import json

    from medrag import build_index
    from medrag.ingest.store import write_corpus
    from medrag.types import Chunk, Metadata, chunk_id_for

    root = tmp_path_factory.mktemp("integrations")
    chunks, positions = [], {}
    for line in (FIXTURES / "integrations" / "chunks.jsonl").read_text().splitlines():
        row = json.loads(line)
        pos = positions[row["doc_id"]] = positions.get(row["doc_id"], -1) + 1
        chunks.append(Chunk(chunk_id=chunk_id_for(row["doc_id"], pos), doc_id=row["doc_id"], source=row["source"],
                            title=row["title"], section=row["section"], text=row["text"], position=pos,
                            metadata=Metadata.from_dict(row["metadata"])))
    write_corpus(root / "corpus", chunks, source="mixed")
    return build_index([root / "corpus"], root / "index", progress=False)
