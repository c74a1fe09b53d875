"""Foundation: record types, manifests, the Arrow store and the chunker."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from medrag.config import ChunkConfig
from medrag.errors import ConfigError, CorpusError
from medrag.ingest.chunking import Chunker, split_sentences
from medrag.ingest.store import Corpus, write_corpus
from medrag.manifest import atomic_write_json, read_manifest
from medrag.retrieve.base import Filters, check_k, check_query
from medrag.types import Chunk, Document, Metadata, Section


def _chunks(n: int) -> list[Chunk]:
    return [
        Chunk(f"t:{i}#0", f"t:{i}", "test", f"Title {i}", "Abstract", f"text number {i}", 0,
              Metadata(pmid=str(i), year=2000 + i, mesh=("Humans", "Aspirin"), extra=(("k", "v"),)))
        for i in range(n)
    ]


def test_import_medrag_is_light():
    code = "import sys, medrag; bad = [m for m in ('torch', 'faiss', 'llama_cpp', 'fastapi') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_corpus_round_trip_across_shards(tmp_path):
    chunks = _chunks(10)
    corpus = write_corpus(tmp_path / "c", chunks, source="test", shard_rows=3)
    assert corpus.num_rows == 10
    assert len(corpus.manifests[0]["shards"]) == 4
    assert list(Corpus.open(tmp_path / "c", verify=True)) == chunks
    assert corpus.take([9, 0]) == [chunks[9], chunks[0]]


def test_corpus_fingerprint_is_content_addressed(tmp_path):
    a = write_corpus(tmp_path / "a", _chunks(5), source="test")
    b = write_corpus(tmp_path / "b", _chunks(5), source="test")
    c = write_corpus(tmp_path / "c", _chunks(6), source="test")
    assert a.fingerprints == b.fingerprints != c.fingerprints


def test_corrupt_shard_is_detected(tmp_path):
    write_corpus(tmp_path / "c", _chunks(5), source="test")
    shard = next((tmp_path / "c" / "shards").glob("*.arrow"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match="corrupt"):
        Corpus.open(tmp_path / "c", verify=True)


def test_missing_manifest_means_incomplete(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(CorpusError, match="incomplete"):
        Corpus.open(tmp_path / "c")


def test_manifest_kind_and_version_checked(tmp_path):
    atomic_write_json(tmp_path / "manifest.json", {"kind": "index", "format_version": 1})
    with pytest.raises(CorpusError, match="kind"):
        read_manifest(tmp_path, kind="corpus", supported_versions=(1,), error=CorpusError)
    atomic_write_json(tmp_path / "manifest.json", {"kind": "corpus", "format_version": 99})
    with pytest.raises(CorpusError, match="not supported"):
        read_manifest(tmp_path, kind="corpus", supported_versions=(1,), error=CorpusError)
    assert json.loads((tmp_path / "manifest.json").read_text())["format_version"] == 99


def test_sentence_splitter_respects_abbreviations():
    text = "Give a DOAC (e.g. apixaban) vs. warfarin. Smith et al. agreed! Dose? 2.5 mg.\n- list item"
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "Give a DOAC (e.g. apixaban) vs. warfarin.",
        "Smith et al. agreed!",
        "Dose?",
        "2.5 mg.",
        "- list item",
    ]


def test_chunker_limits_overlap_and_verbatim_slices():
    sentences = [f"Sentence number {i} mentions apixaban and atrial fibrillation." for i in range(60)]
    text = " ".join(sentences)
    doc = Document("d:1", "test", "T", (Section("Body", text),))
    chunker = Chunker(ChunkConfig(max_tokens=64, overlap_tokens=16))
    chunks = chunker.chunk(doc)
    assert len(chunks) > 5
    assert [c.chunk_id for c in chunks] == [f"d:1#{i}" for i in range(len(chunks))]
    for c in chunks:
        assert chunker.count_tokens(c.text) <= 64
        assert c.text in text
    # consecutive chunks share trailing sentences (overlap), and together cover every sentence
    assert chunks[1].text.split(". ")[0] in chunks[0].text
    covered = " ".join(c.text for c in chunks)
    assert all(s in covered for s in sentences)
    assert chunker.chunk(doc) == chunks  # deterministic


def test_chunker_keeps_small_document_whole_and_merges_sections():
    doc = Document("d:2", "test", "T", (Section("A", "Short one."), Section("B", "Short two.")))
    chunks = Chunker(ChunkConfig(max_tokens=64, overlap_tokens=8)).chunk(doc, inline_headings=True)
    assert len(chunks) == 1
    assert chunks[0].text == "A\nShort one.\n\nB\nShort two."
    assert chunks[0].section == "A"


def test_chunker_splits_overlong_sentence_at_token_boundaries():
    text = " ".join(["anticoagulation"] * 300)
    doc = Document("d:3", "test", "T", (Section("", text),))
    chunker = Chunker(ChunkConfig(max_tokens=50, overlap_tokens=10))
    chunks = chunker.chunk(doc)
    assert len(chunks) > 3
    assert all(chunker.count_tokens(c.text) <= 50 for c in chunks)


def test_config_validation():
    with pytest.raises(ConfigError):
        ChunkConfig(max_tokens=64, overlap_tokens=40)


def test_filters_parse_and_validate():
    f = Filters.parse({"source": "pubmed", "year": [2015, None]})
    assert f == Filters(source=("pubmed",), year=(2015, None))
    for bad in ({"colour": 1}, {"year": "2015"}, {"year": (2020, 2010)}, {"source": 3}):
        with pytest.raises(ValueError):
            Filters.parse(bad)
    with pytest.raises(ValueError):
        check_query("   ")
    with pytest.raises(ValueError):
        check_k(0)
    assert check_k(5) == 5


def test_corpus_take_reads_rows_in_any_order_across_shards(tmp_path):
    chunks = _chunks(23)
    corpus = write_corpus(tmp_path / "c", chunks, source="test", shard_rows=5)
    assert len(corpus._batches) >= 5
    rows = [22, 0, 5, 4, 5, 17, 9]
    assert corpus.take(rows) == [chunks[r] for r in rows]
    assert corpus.take(np.array([3])) == [chunks[3]]
    assert corpus.take([]) == []
    with pytest.raises(IndexError):
        corpus.take([23])
    with pytest.raises(IndexError):
        corpus.take([-1])
