"""Build → save → load (mmap) round trips on real files with the real bundled encoder."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from _fixture_corpus import fixture_chunks

import medrag
from medrag.config import EncoderConfig, FusionConfig, IndexConfig
from medrag.errors import ConfigError, IndexFormatError, InputError, QueryError
from medrag.ingest.store import write_corpus
from medrag.manifest import atomic_write_json, seal_manifest
from medrag.retrieve.base import Retriever

pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

QUERIES = ["first-line anticoagulant in atrial fibrillation", "gout flare treatment", "β-blocker after infarction"]




def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("idx")
    write_corpus(root / "corpus", fixture_chunks(), source="fixture")
    config = IndexConfig(encoder=EncoderConfig(shard_rows=8))
    out = medrag.build_index([root / "corpus"], root / "index", config, progress=False)
    return root, Path(out)


def _hits(retriever, query, **kw):
    return [(h.chunk_id, round(h.score, 5)) for h in retriever.search(query, **kw)]


def test_round_trip_gives_identical_hits(built, tmp_path):
    root, index = built
    first = medrag.load_index(index)
    assert isinstance(first, Retriever)
    second = medrag.load_index(index)
    for mode in ("hybrid", "bm25", "dense"):
        a, b = first.with_options(mode=mode), second.with_options(mode=mode)
        for q in QUERIES:
            assert _hits(a, q, k=5) == _hits(b, q, k=5)
            n = len(a.search(q, k=5))
            assert n == 5 if mode != "bm25" else 1 <= n <= 5  # BM25 returns only chunks sharing a term
    # a second build of the same corpus and config is byte-identical
    again = medrag.build_index([root / "corpus"], tmp_path / "again", IndexConfig(encoder=EncoderConfig(shard_rows=8)),
                               progress=False)
    m1 = json.loads((index / "manifest.json").read_text())
    m2 = json.loads((again / "manifest.json").read_text())
    assert m1["files"] == m2["files"] and m1["fingerprint"] == m2["fingerprint"]


def test_hits_carry_corpus_fields_and_ranks(built):
    _, index = built
    hits = medrag.load_index(index).search("apixaban dose reduction", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].doc_id == "guideline:af/anticoag" and "2.5 mg" in hits[0].text
    assert hits[0].title and hits[0].section and hits[0].source == "guidelines" and hits[0].metadata.year == 2023
    assert all(hits[i].score >= hits[i + 1].score for i in range(2))


def test_manifest_records_what_the_index_is(built):
    _, index = built
    m = medrag.load_index(index).manifest
    assert m.kind == "index" and m.format_version == 1 and m.rows == 30
    assert m.bm25.tokenizer["stemmer"] == "english"
    assert m.dense is not None and m.dense.dim == 384 and m.dense.metric == "ip" and m.dense.faiss["factory"] == "Flat"
    assert m.corpora[0].path == "../corpus" and len(m.corpora[0].fingerprint) == 64
    assert {"bm25s", "faiss", "torch", "sentence-transformers"} <= set(m.versions)
    assert m.dense.encoder["backend"] == "auto"  # resolved on the machine; the runtime used is recorded:
    runtime = json.loads((index / "dense" / "vectors.json").read_text())["encoder_runtime"]
    assert runtime == ("onnx-export" if "onnxruntime" in m.versions else "torch")
    assert set(m.files) == {
        "bm25/data.csc.index.npy", "bm25/indices.csc.index.npy", "bm25/indptr.csc.index.npy",
        "bm25/vocab.index.json", "bm25/params.index.json", "bm25/term_bounds.medrag.npy", "dense/vectors.npy",
        "dense/faiss.index",
    }


def test_loading_is_memory_mapped_and_writes_nothing(built):
    root, index = built
    before = _tree(root)
    r = medrag.load_index(index, verify=True)
    r.search("sepsis", k=3)
    r.with_options(mode="dense").search("sepsis", k=3, filters={"source": "pubmed"})
    assert isinstance(r.bm25.model.scores["indices"], np.memmap)
    assert isinstance(r._dense.index.vectors, np.memmap)
    assert _tree(root) == before


def test_batch_search_equals_search(built):
    _, index = built
    r = medrag.load_index(index)
    batch = r.batch_search(QUERIES, k=4, filters={"year": (2015, None)})
    assert batch == [r.search(q, k=4, filters={"year": (2015, None)}) for q in QUERIES]


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_filters_apply_inside_retrieval(built, mode):
    _, index = built
    r = medrag.load_index(index, mode=mode)
    # "anticoagulation" matches guideline chunks best; pubmed-only results must still fill k where they exist
    hits = r.search("anticoagulation for atrial fibrillation", k=5, filters={"source": "pubmed"})
    assert all(h.source == "pubmed" for h in hits)
    if mode != "bm25":
        assert len(hits) == 5  # 10 pubmed chunks exist
    hits = r.search("therapy", k=10, filters={"year": (2019, 2020)})
    assert hits and all(2019 <= h.metadata.year <= 2020 for h in hits)
    hits = r.search("heart", k=10, filters={"doc_ids": ["guideline:hf/gdmt", "pubmed:1003"]})
    assert {h.doc_id for h in hits} <= {"guideline:hf/gdmt", "pubmed:1003"}


def test_fusion_override_and_modes(built):
    _, index = built
    r = medrag.load_index(index, fusion=FusionConfig(method="rrf"))
    assert r.fusion.method == "rrf" and len(r.search("gout", k=3)) == 3
    with pytest.raises(ConfigError):
        medrag.load_index(index, mode="sparse")


def test_query_errors(built):
    _, index = built
    r = medrag.load_index(index)
    for bad in ("", "   "):
        with pytest.raises(QueryError, match="non-empty"):
            r.search(bad)
    for k in (0, -1):
        with pytest.raises(QueryError, match="positive"):
            r.search("gout", k=k)
    with pytest.raises(QueryError, match="unknown filter"):
        r.search("gout", filters={"journal": "x"})


def test_missing_index_is_a_precise_error(tmp_path):
    with pytest.raises(IndexFormatError, match="medrag index build"):
        medrag.load_index(tmp_path / "nope")


def _copy_index(built, tmp_path):
    import shutil

    root, index = built
    shutil.copytree(root / "corpus", tmp_path / "corpus")
    shutil.copytree(index, tmp_path / "index")
    return tmp_path / "index"


def test_corrupt_file_is_named(built, tmp_path):
    index = _copy_index(built, tmp_path)
    target = index / "dense" / "vectors.npy"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0xFF  # same size, different content: found by sha256
    target.write_bytes(bytes(data))
    medrag.load_index(index)  # the cheap default check only compares sizes
    with pytest.raises(IndexFormatError, match=r"dense/vectors\.npy is corrupt \(sha256"):
        medrag.load_index(index, verify=True)
    vocab = index / "bm25" / "vocab.index.json"
    original = vocab.read_bytes()
    vocab.write_text("{}")
    with pytest.raises(IndexFormatError, match=r"bm25/vocab\.index\.json is corrupt \(size"):
        medrag.load_index(index)
    vocab.write_bytes(original)
    (index / "dense" / "faiss.index").unlink()
    with pytest.raises(IndexFormatError, match=r"faiss\.index"):
        medrag.load_index(index)


def test_changed_corpus_is_detected(built, tmp_path):
    index = _copy_index(built, tmp_path)
    chunks = fixture_chunks()
    chunks[0] = dataclasses.replace(chunks[0], text=chunks[0].text + " Edited.")
    write_corpus(tmp_path / "corpus", chunks, source="fixture")
    with pytest.raises(IndexFormatError, match="changed since the index was built"):
        medrag.load_index(index)


def test_index_moves_with_its_corpus(built, tmp_path):
    index = _copy_index(built, tmp_path)
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["corpora"][0]["absolute_path"] = "/nonexistent"  # only the relative path can resolve
    atomic_write_json(index / "manifest.json", seal_manifest(manifest))  # an edit must be re-sealed
    assert len(medrag.load_index(index).search("gout", k=2)) == 2


def test_bm25_only_index(built, tmp_path):
    root, _ = built
    out = medrag.build_index([root / "corpus"], tmp_path / "sparse", IndexConfig(dense=False), progress=False)
    r = medrag.load_index(out, mode="bm25")
    assert r.search("colchicine", k=2)[0].doc_id in {"guideline:gout/flare", "pubmed:1006"}
    assert not (Path(out) / "dense").exists()
    with pytest.raises(ConfigError, match="no dense part"):
        medrag.load_index(out, mode="hybrid")


def test_killed_build_resumes_encoding(built, tmp_path, monkeypatch):
    from medrag.index import build as build_mod
    from medrag.index import encoder as encoder_mod

    root, _ = built
    real = encoder_mod.load_encoder(EncoderConfig(shard_rows=8))
    calls: list[int] = []

    class Flaky:
        dim = real.dim

        def encode_passages(self, texts):
            calls.append(len(texts))
            if len(calls) == 3:
                raise KeyboardInterrupt
            return real.encode_passages(texts)

    monkeypatch.setattr(build_mod, "load_encoder", lambda config: Flaky())
    config = IndexConfig(encoder=EncoderConfig(shard_rows=8))
    with pytest.raises(KeyboardInterrupt):
        medrag.build_index([root / "corpus"], tmp_path / "idx", config, progress=False)
    assert not (tmp_path / "idx" / "manifest.json").exists()
    calls.clear()
    medrag.build_index([root / "corpus"], tmp_path / "idx", config, progress=False)
    assert calls == [8, 6]  # shards 0 and 1 were kept; 2 and 3 encoded now
    assert os.path.exists(tmp_path / "idx" / "manifest.json")
    monkeypatch.undo()
    ref = medrag.load_index(built[1], mode="dense").search("sepsis", k=3)
    assert [h.chunk_id for h in medrag.load_index(tmp_path / "idx", mode="dense").search("sepsis", k=3)] == \
        [h.chunk_id for h in ref]


def test_precomputed_vectors_give_the_same_dense_index(built, tmp_path):
    root, index = built
    out = medrag.build_index([root / "corpus"], tmp_path / "pre", IndexConfig(), progress=False,
                             vectors=index / "dense" / "vectors.npy")
    pre = medrag.load_index(out, mode="dense")
    assert pre.manifest.dense.vectors_source == "precomputed"
    ref = medrag.load_index(index, mode="dense")
    assert _hits(pre, "sepsis definition", k=5) == _hits(ref, "sepsis definition", k=5)
    np.save(tmp_path / "bad.npy", np.zeros((3, 384), dtype=np.float32))
    with pytest.raises(InputError, match="expected \\(30, dim\\)"):
        medrag.build_index([root / "corpus"], tmp_path / "bad", IndexConfig(), progress=False,
                           vectors=tmp_path / "bad.npy")
