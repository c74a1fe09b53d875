"""Dense side: resumable shards, FAISS build/load/search, filtered search, GPU dispatch (on CPU)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from medrag.config import FaissConfig
from medrag.errors import BackendUnavailableError, ConfigError
from medrag.index import dense as dense_mod
from medrag.index.dense import (
    DenseIndex,
    build_faiss,
    encode_to_shards,
    exact_search,
    load_faiss,
    merge_shards,
    resolve_faiss_device,
    row_scores,
)

faiss = pytest.importorskip("faiss")


def _vectors(n: int = 500, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _encode(texts):
    return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)


def test_encoding_resumes_after_an_interruption(tmp_path):
    texts = [f"passage {i} " + "a" * i for i in range(23)]
    calls = []

    def encode(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while encoding the third shard
        return _encode(batch)

    key = {"model": "m"}
    with pytest.raises(KeyboardInterrupt):
        encode_to_shards(tmp_path / "shards", 23, lambda a, b: texts[a:b], encode, key=key, shard_rows=5)
    assert calls == [5, 5, 5]
    calls.clear()
    paths = encode_to_shards(tmp_path / "shards", 23, lambda a, b: texts[a:b], lambda b: calls.append(len(b)) or _encode(b),
                             key=key, shard_rows=5)
    assert calls == [5, 5, 3]  # the two finished shards were not encoded again
    merge_shards(paths, tmp_path / "vectors.npy", 23, 3)
    merged = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    np.testing.assert_array_equal(merged, _encode(texts))


def test_changed_encoder_discards_old_shards(tmp_path):
    texts = [str(i) for i in range(10)]
    encode_to_shards(tmp_path / "s", 10, lambda a, b: texts[a:b], _encode, key={"model": "a"}, shard_rows=4)
    calls = []
    encode_to_shards(tmp_path / "s", 10, lambda a, b: texts[a:b], lambda b: calls.append(1) or _encode(b),
                     key={"model": "b"}, shard_rows=4)
    assert len(calls) == 3


def test_flat_index_is_exact_and_loads_memory_mapped(tmp_path):
    vectors = _vectors()
    index = build_faiss(vectors, FaissConfig(), "ip")
    faiss.write_index(index, str(tmp_path / "f.index"))
    loaded = load_faiss(tmp_path / "f.index", FaissConfig())
    dense = DenseIndex(loaded, vectors, "ip", FaissConfig())
    queries = _vectors(5, seed=1)
    rows, scores = dense.search(queries, 10)
    for q, r, s in zip(queries, rows, scores, strict=True):
        truth = np.argsort(-(vectors @ q), kind="stable")[:10]
        assert r.tolist() == truth.tolist()
        np.testing.assert_allclose(s, vectors[r] @ q, rtol=1e-5)


def test_trained_indexes_use_a_sample(tmp_path):
    vectors = _vectors(2000)
    for factory in ("IVF8,Flat", "HNSW16"):
        index = build_faiss(vectors, FaissConfig(factory=factory, train_sample=300), "ip")
        assert index.ntotal == 2000 and index.is_trained
    with pytest.raises(ConfigError, match="factory"):
        build_faiss(vectors, FaissConfig(factory="NoSuchIndex"), "ip")


@pytest.mark.parametrize("factory", ["Flat", "IVF8,Flat", "HNSW16"])
def test_filtered_search_returns_k_allowed_rows(factory, monkeypatch):
    vectors = _vectors(3000)
    config = FaissConfig(factory=factory, train_sample=500, nprobe=1)
    dense = DenseIndex(build_faiss(vectors, config, "ip"), vectors, "ip", config)
    mask = np.zeros(3000, dtype=bool)
    mask[::7] = True
    query = _vectors(1, seed=3)[0]
    truth_rows, _ = exact_search(vectors, np.flatnonzero(mask), query, 10, "ip")
    for threshold in (10**9, 10):  # exact path for small allowed sets, FAISS selector path otherwise
        monkeypatch.setattr(dense_mod, "EXACT_FILTER_ROWS", threshold)
        rows, scores = dense.search_filtered(query, 10, mask)
        assert len(rows) == 10 and mask[rows].all()
        if factory == "Flat":
            assert rows.tolist() == truth_rows.tolist()
    tiny = np.zeros(3000, dtype=bool)
    tiny[[4, 40]] = True
    assert sorted(dense.search_filtered(query, 10, tiny)[0].tolist()) == [4, 40]


def test_overfetch_path_used_on_gpu_still_filters(monkeypatch):
    vectors = _vectors(1000)
    config = FaissConfig()
    dense = DenseIndex(build_faiss(vectors, config, "ip"), vectors, "ip", config)
    dense.on_gpu = True  # GPU indexes take no selector: the over-fetch loop must find the allowed rows
    monkeypatch.setattr(dense_mod, "EXACT_FILTER_ROWS", 10)
    mask = np.zeros(1000, dtype=bool)
    mask[::50] = True
    query = _vectors(1, seed=5)[0]
    rows, _ = dense.search_filtered(query, 5, mask)
    truth, _ = exact_search(vectors, np.flatnonzero(mask), query, 5, "ip")
    assert rows.tolist() == truth.tolist()


def test_l2_scores_are_negated_distances():
    vectors = _vectors(50)
    q = vectors[3]
    s = row_scores(vectors, np.array([3, 4]), q, "l2")
    assert s[0] == pytest.approx(0.0, abs=1e-6) and s[1] < 0
    index = build_faiss(vectors, FaissConfig(), "l2")
    dense = DenseIndex(index, vectors, "l2", FaissConfig())
    rows, scores = dense.search(q[None, :], 3)
    assert rows[0][0] == 3 and scores[0][0] == pytest.approx(0.0, abs=1e-5)


def test_gpu_dispatch():
    assert resolve_faiss_device("cpu", faiss) is None
    cpu_only = types.SimpleNamespace()  # faiss-cpu has no StandardGpuResources
    with pytest.raises(BackendUnavailableError, match="GPU support"):
        resolve_faiss_device("cuda", cpu_only)
    gpu_build = types.SimpleNamespace(StandardGpuResources=object, get_num_gpus=lambda: 2)
    assert resolve_faiss_device("cuda", gpu_build) == 0
    assert resolve_faiss_device("cuda:1", gpu_build) == 1
    with pytest.raises(BackendUnavailableError, match="sees 2 GPU"):
        resolve_faiss_device("cuda:2", gpu_build)
    if not hasattr(faiss, "StandardGpuResources"):
        with pytest.raises(BackendUnavailableError):
            build_faiss(_vectors(10), FaissConfig(device="cuda"), "ip")


def test_gpu_clone_options_and_shared_resources(monkeypatch):
    """The GPU branch, driven through a stand-in for faiss-gpu (no GPU here): resources are created once
    per device and IVF-PQ gets float16 lookup tables while flat indexes stay float32."""
    calls = []

    class FakeGpuFaiss:
        IndexIVFPQ = faiss.IndexIVFPQ
        extract_index_ivf = staticmethod(faiss.extract_index_ivf)
        downcast_index = staticmethod(faiss.downcast_index)

        class StandardGpuResources:
            pass

        class GpuClonerOptions:
            useFloat16 = None

        @staticmethod
        def index_cpu_to_gpu(res, gpu, index, options):
            calls.append((res, gpu, options.useFloat16))
            return index

    monkeypatch.setattr(dense_mod, "_GPU_RESOURCES", {})
    flat = faiss.index_factory(8, "Flat", faiss.METRIC_INNER_PRODUCT)
    ivfpq = faiss.index_factory(8, "IVF4,PQ4", faiss.METRIC_INNER_PRODUCT)
    dense_mod.to_gpu(FakeGpuFaiss, flat, 0)
    dense_mod.to_gpu(FakeGpuFaiss, ivfpq, 0)
    dense_mod.to_gpu(FakeGpuFaiss, flat, 1)
    assert [c[1:] for c in calls] == [(0, False), (0, True), (1, False)]
    assert calls[0][0] is calls[1][0] is not calls[2][0]
