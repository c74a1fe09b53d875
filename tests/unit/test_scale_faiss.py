"""Compressed and sharded FAISS indexes: manifest records, shard merging, recall against exact search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medrag.config import FaissConfig, IndexConfig
from medrag.errors import ConfigError

faiss = pytest.importorskip("faiss")

from medrag.index.dense import DenseIndex, exact_search  # noqa: E402
from medrag.index.faiss_files import load_dense_faiss, shard_bounds, write_faiss  # noqa: E402


def _clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, dim)).astype(np.float32)
    x = centers[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _dense(tmp_path, vectors, config):
    (tmp_path / "dense").mkdir(parents=True, exist_ok=True)
    record = write_faiss(vectors, config, "ip", tmp_path)
    return record, DenseIndex(load_dense_faiss(tmp_path, record, config), vectors, "ip", config)


def test_shard_bounds_cover_rows_contiguously():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(2, 4)[-1] == (2, 2) and sum(b - a for a, b in shard_bounds(1001, 7)) == 1001
    with pytest.raises(ConfigError, match="shards"):
        FaissConfig(shards=0)


def test_sharded_flat_equals_single_flat(tmp_path):
    vectors = _clustered(1000)
    queries = _clustered(15, seed=1)
    _, single = _dense(tmp_path / "one", vectors, FaissConfig())
    record, sharded = _dense(tmp_path / "three", vectors, FaissConfig(shards=3))
    assert record["files"] == ["dense/faiss-000.index", "dense/faiss-001.index", "dense/faiss-002.index"]
    assert "file" not in record and record["ntotal"] == 1000 and record["trained_on"] == 0
    assert record["bytes_per_vector"] >= 32 * 4  # fp32 codes
    assert isinstance(sharded.index, faiss.IndexShards)
    want, got = single.search(queries, 10), sharded.search(queries, 10)
    for r1, s1, r2, s2 in zip(*want, *got, strict=True):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_allclose(s1, s2, rtol=1e-6)
    mask = np.zeros(1000, dtype=bool)
    mask[::2] = True  # filtered search over shards: ids are global (no selector through IndexShards)
    rows, scores = sharded.search_filtered(queries[0], 10, mask)
    want_rows, want_scores = exact_search(vectors, np.flatnonzero(mask), queries[0], 10, "ip")
    np.testing.assert_array_equal(rows, want_rows)
    assert mask[rows].all()


@pytest.mark.parametrize(("factory", "shards", "floor"), [
    ("IVF16,PQ8np", 1, 0.5), ("IVF16,PQ8np", 2, 0.5), ("OPQ8,IVF16,PQ8np", 1, 0.5), ("SQfp16", 1, 0.99),
])
def test_compressed_indexes_recall_against_exact(tmp_path, factory, shards, floor):
    vectors = _clustered(3000)
    queries = _clustered(30, seed=2)
    config = FaissConfig(factory=factory, shards=shards, train_sample=1500, nprobe=16)
    record, index = _dense(tmp_path, vectors, config)
    assert record["factory"] == factory and record["shards"] == shards
    assert record["trained_on"] == (0 if factory == "SQfp16" else 1500)
    if "PQ8" in factory:
        # 8-byte codes + 8-byte ids (+ codebooks/quantizer per shard, large at 3k rows) vs 128 B for fp32
        assert record["bytes_per_vector"] < 32 * 4 / 2
    rows, _ = index.search(queries, 10)
    truth = [exact_search(vectors, np.arange(3000), q, 10, "ip")[0] for q in queries]
    recall = np.mean([len(set(r.tolist()) & set(t.tolist())) / 10 for r, t in zip(rows, truth, strict=True)])
    assert recall >= floor


def test_build_index_records_compressed_sharded_faiss(tmp_path):
    from medrag.index import build_index
    from medrag.ingest.store import write_corpus
    from medrag.types import Chunk, Metadata

    chunks = [Chunk(f"d{i}#0", f"d{i}", "fixture", f"title {i}", "", f"text number {i} about dose {i % 7}", 0,
                    Metadata(year=2020)) for i in range(300)]
    write_corpus(tmp_path / "corpus", chunks, source="fixture")
    np.save(tmp_path / "vectors.npy", np.pad(_clustered(300), ((0, 0), (0, 384 - 32))))
    config = IndexConfig(faiss=FaissConfig(factory="IVF8,PQ16x4np", shards=2, train_sample=200))
    build_index([tmp_path / "corpus"], tmp_path / "index", config, progress=False, vectors=tmp_path / "vectors.npy")
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    record = manifest["dense"]["faiss"]
    assert record["factory"] == "IVF8,PQ16x4np" and record["shards"] == 2 and record["trained_on"] == 200
    assert set(record["files"]) <= set(manifest["files"]) and len(record["files"]) == 2
    assert manifest["build"]["engine"] == "local" and manifest["bm25"]["stats"]["parts"] == 1
    assert not (tmp_path / "index" / "dense" / "faiss.index").exists()


def test_training_on_too_few_vectors_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be trained on 100 vectors"):
        _dense(tmp_path, _clustered(100), FaissConfig(factory="IVF4,PQ8np"))


def test_exact_rerank_of_compressed_candidates_raises_recall(tmp_path):
    vectors = _clustered(3000)
    queries = _clustered(30, seed=2)
    truth = [exact_search(vectors, np.arange(3000), q, 10, "ip") for q in queries]
    recalls = {}
    for rerank in (0, 10):
        config = FaissConfig(factory="IVF16,PQ8np", train_sample=1500, nprobe=16, rerank=rerank)
        _, index = _dense(tmp_path / str(rerank), vectors, config)
        rows, scores = index.search(queries, 10)
        recalls[rerank] = np.mean([len(set(r.tolist()) & set(t[0].tolist())) / 10
                                   for r, t in zip(rows, truth, strict=True)])
        if rerank:  # re-ranked scores are the exact inner products
            np.testing.assert_allclose(scores[0], vectors[rows[0]] @ queries[0], rtol=1e-5)
            mask = np.zeros(3000, dtype=bool)
            mask[1::3] = True
            f_rows, _ = index.search_filtered(queries[1], 10, mask)
            assert mask[f_rows].all() and f_rows.size == 10
    assert recalls[10] > recalls[0] and recalls[10] >= 0.95
