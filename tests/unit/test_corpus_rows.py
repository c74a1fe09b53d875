"""Hit/Chunk materialisation from the memory-mapped corpus equals the slow path (pyarrow ``take`` + ``to_pylist``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from medrag.ingest import ingest
from medrag.ingest.store import Corpus, batch_to_chunks, write_corpus
from medrag.types import Chunk, Hit, Metadata


def _slow_take(corpus: Corpus, rows: list[int]) -> list[Chunk]:
    return batch_to_chunks(corpus.table.take(pa.array(rows, type=pa.int64())))


def _slow_hits(corpus: Corpus, rows: list[int], scores: list[float]) -> list[Hit]:
    return [Hit(c.chunk_id, c.doc_id, float(s), rank, c.text, c.title, c.section, c.source, c.metadata)
            for rank, (c, s) in enumerate(zip(_slow_take(corpus, rows), scores, strict=True), start=1)]


def _assert_same(corpus: Corpus, rows: list[int]) -> None:
    scores = np.linspace(9.5, 1.25, num=len(rows), dtype=np.float32)
    assert corpus.take(rows) == _slow_take(corpus, rows)
    got = corpus.hits(np.asarray(rows), scores)
    assert got == _slow_hits(corpus, rows, scores.tolist())
    assert [type(h.score) for h in got] == [float] * len(rows)
    assert [h.rank for h in got] == list(range(1, len(rows) + 1))


def _varied(n: int) -> list[Chunk]:
    """Chunks with nulls, empty strings, non-ASCII text, list columns and extras, differing row to row."""
    out = []
    for i in range(n):
        meta = Metadata(
            pmid=str(1000 + i) if i % 3 else None,
            doi=f"10.1/δ{i}" if i % 4 == 1 else None,
            journal="Ärztebl. 医学" if i % 5 == 2 else None,
            year=1990 + i if i % 2 else None,
            mesh=("Humans", f"Warfarin {i}", "β-Blockers") if i % 3 == 1 else (),
            publication_types=("Review",) if i % 7 == 3 else (),
            url="https://example.org/x" if i == 5 else None,
            extra=(("k", f"v{i}"), ("ünï", "☃")) if i % 6 == 4 else (),
        )
        text = ["plain ascii text", "TNF-α and IL-6 in 🫀 failure", "", "x" * 3000][i % 4]
        out.append(Chunk(f"c:{i}#{i % 2}", f"c:{i}", ["pubmed", "pmc", "guidelines"][i % 3], f"Titre {i} é",
                         ["Abstract", "", "Méthodes"][i % 3], text, i % 4, meta))
    return out


def test_take_and_hits_equal_the_slow_path_across_batches_and_shards(tmp_path):
    chunks = _varied(40)
    corpus = write_corpus(tmp_path / "c", chunks, source="test", shard_rows=7)
    assert len(corpus._batches) >= 6
    rng = np.random.default_rng(3)
    for _ in range(20):
        rows = rng.integers(0, len(chunks), size=int(rng.integers(1, 15))).tolist()
        _assert_same(corpus, rows)
    assert corpus.take(list(range(40))) == chunks
    assert corpus.hits([], []) == []


def test_batches_without_metadata_share_the_empty_metadata(tmp_path):
    chunks = [Chunk(f"c:{i}#0", f"c:{i}", "test", "T", "S", f"text {i}", 0) for i in range(5)]
    corpus = write_corpus(tmp_path / "c", chunks, source="test")
    hits = corpus.hits([4, 0], [2.0, 1.0])
    assert hits[0].metadata == Metadata() and hits[0].metadata is hits[1].metadata
    assert hits[0].text == "text 4" and hits[1].chunk_id == "c:0#0"
    with pytest.raises(ValueError):
        corpus.hits([1, 2], [1.0])


def _ingested(fixtures_dir, tmp_path) -> Corpus:
    """Real ingested corpora (PubMed with MeSH lists and nulls, PMC, guideline jsonl) opened together."""
    ingest("pubmed", [fixtures_dir / "ingest" / "pubmed" / "base.xml"], tmp_path / "pubmed", progress=False)
    ingest("pmc", [fixtures_dir / "ingest" / "pmc" / "article.nxml"], tmp_path / "pmc", progress=False)
    ingest("jsonl", [fixtures_dir / "ingest" / "jsonl" / "beir_corpus.jsonl"], tmp_path / "jsonl", progress=False)
    return Corpus.open_many([tmp_path / "pubmed", tmp_path / "pmc", tmp_path / "jsonl"])


def test_ingested_fixtures_read_like_the_slow_path(fixtures_dir, tmp_path):
    corpus = _ingested(fixtures_dir, tmp_path)
    n = corpus.num_rows
    assert n > 5
    rows = list(range(n))[::-1]
    _assert_same(corpus, rows)
    assert any(h.metadata.mesh for h in corpus.hits(rows, [1.0] * n))


def _in_memory(corpus: Corpus) -> Corpus:
    held = Corpus(corpus.paths, corpus.manifests, corpus.table)
    held.load_rows()
    assert held.rows == "memory" and corpus.rows == "mmap"
    return held


def test_rows_held_in_memory_equal_the_mmap_path(tmp_path):
    chunks = _varied(40)
    corpus = write_corpus(tmp_path / "c", chunks, source="test", shard_rows=7)
    held = _in_memory(corpus)
    rng = np.random.default_rng(4)
    for _ in range(20):
        rows = rng.integers(0, len(chunks), size=int(rng.integers(1, 15))).tolist()
        scores = rng.random(len(rows))
        assert held.hits(np.asarray(rows), scores) == corpus.hits(rows, scores)
        _assert_same(held, rows)
    assert held.take(list(range(40))) == chunks
    assert held.hits([], []) == [] and held.take([]) == []
    for bad in ([40], [-1], [3, 41]):
        with pytest.raises(IndexError):
            held.hits(bad, [1.0] * len(bad))
    with pytest.raises(ValueError):
        held.hits([1, 2], [1.0])


def test_ingested_fixtures_held_in_memory_read_like_the_slow_path(fixtures_dir, tmp_path):
    corpus = _ingested(fixtures_dir, tmp_path)
    held = _in_memory(corpus)
    rows = list(range(corpus.num_rows))[::-1]
    _assert_same(held, rows)
    assert held.hits(rows, [1.0] * len(rows)) == corpus.hits(rows, [1.0] * len(rows))


def test_hits_many_equals_one_hits_call_per_query(tmp_path):
    chunks = _varied(40)
    corpus = write_corpus(tmp_path / "c", chunks, source="test", shard_rows=7)
    held = _in_memory(corpus)
    rng = np.random.default_rng(9)
    results = []
    for size in (3, 0, 10, 1, 7):  # an empty result keeps its place
        rows = rng.integers(0, len(chunks), size=size)
        results.append((rows, rng.random(size).astype(np.float32)))
    expected = [corpus.hits(rows, scores) for rows, scores in results]
    for store in (corpus, held):
        got = store.hits_many(results)
        assert got == expected
        assert [[h.rank for h in hits] for hits in got] == [list(range(1, len(r) + 1)) for r, _ in results]
        assert store.hits_many(results[:1]) == expected[:1] and store.hits_many([]) == []
        with pytest.raises(ValueError):
            store.hits_many([results[0], (results[2][0], results[2][1][:3])])
        with pytest.raises(IndexError):
            store.hits_many([results[0], (np.array([40]), np.array([1.0]))])


def test_held_rows_share_equal_values(tmp_path):
    """Held rows keep one object per repeated doc id, title, source, section and metadata (memory, cache)."""
    meta = Metadata(pmid="1", year=2020, mesh=("Heart",))
    chunks = [Chunk(f"d:{i // 3}#{i % 3}", f"d:{i // 3}", "pubmed", f"Title {i // 3}", "Results", f"text {i}",
                    i % 3, meta if i < 6 else Metadata(pmid=str(i), year=2020)) for i in range(12)]
    held = _in_memory(write_corpus(tmp_path / "c", chunks, source="pubmed"))
    hits = held.hits(list(range(12)), [1.0] * 12)
    assert [h.chunk_id for h in hits] == [c.chunk_id for c in chunks] and [h.metadata for h in hits] == [
        c.metadata for c in chunks]
    assert hits[0].doc_id is hits[2].doc_id and hits[0].title is hits[1].title
    assert hits[0].source is hits[11].source and hits[0].section is hits[11].section
    assert hits[0].metadata is hits[5].metadata and hits[6].metadata is not hits[7].metadata


def test_hit_is_a_frozen_value_whether_constructed_or_built_from_stored_rows():
    import copy
    import dataclasses
    import pickle

    meta = Metadata(pmid="7", mesh=("Humans",))
    made = Hit("d#1", "d", 2.5, 3, "text", "Title", "Methods", "pubmed", meta)
    row = ("d#1", "d", "pubmed", "Title", "Methods", "text", 1, meta)
    (built,) = Hit.from_rows([row], [2.5], [3])
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert built._row is row  # referenced, not copied
    assert Hit(chunk_id="d#1", doc_id="d", score=2.5, rank=3, text="text", title="Title", section="Methods",
               source="pubmed", metadata=meta) == made
    assert made != Hit("d#1", "d", 2.5, 4, "text", "Title", "Methods", "pubmed", meta)
    assert made != Hit("d#1", "d", 2.5, 3, "text", "Title", "Methods", "pubmed")
    assert (made.chunk_id, made.doc_id, made.source, made.title, made.section, made.text) == row[:6]
    assert made.to_dict()["metadata"]["mesh"] == ["Humans"] and list(made.to_dict())[:4] == [
        "chunk_id", "doc_id", "score", "rank"]
    for name in ("score", "text", "metadata", "other"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, name, 1)
    assert pickle.loads(pickle.dumps(built)) == made and copy.deepcopy(built) == made
    match built:
        case Hit(chunk_id, score=score):
            assert (chunk_id, score) == ("d#1", 2.5)
    assert Hit("a", "b", 0.0, 0, "", "", "", "x").metadata == Metadata()
    with pytest.raises(ValueError, match="1 rows, 2 scores"):
        Hit.from_rows([row], [1.0, 2.0], [1, 2])
