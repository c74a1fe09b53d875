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
# the default encoder's ONNX export is made once and reused across test runs (git-ignored)
os.environ.setdefault("MEDRAG_CACHE_DIR", str(ROOT / ".pytest_cache" / "medrag-cache"))


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


def _tiny_bert(path: Path, *, classifier: bool, seed: int) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with a character-level WordPiece vocabulary, saved as a
    Hugging Face folder: small enough to build in a test, real enough to load through medrag's backends."""
    import string

    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + "-.,;:()/%")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=600, num_labels=1)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT encoder folder (``AutoModel``); see ``_tiny_bert``."""
    pytest.importorskip("transformers")
    return _tiny_bert(tmp_path_factory.mktemp("tiny-bert"), classifier=False, seed=0)


@pytest.fixture(scope="session")
def tiny_bert_query(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny BERT (other weights, same vocabulary): the query side of an asymmetric encoder."""
    pytest.importorskip("transformers")
    return _tiny_bert(tmp_path_factory.mktemp("tiny-bert-query"), classifier=False, seed=1)


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with a 1-label classification head: a sentence-transformers CrossEncoder folder."""
    pytest.importorskip("sentence_transformers")
    return _tiny_bert(tmp_path_factory.mktemp("tiny-cross"), classifier=True, seed=2)
