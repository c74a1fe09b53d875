"""The retrieval pipeline composed by config alone: a second dense leg and a cross-encoder re-ranker, each
added to an index through its IndexConfig (CLI ``--config`` / ``build_index``) or per call
(``--rerank-model``), on tiny local models; the existing modes are unchanged by an extra leg."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import medrag
from medrag.cli import cli
from medrag.config import PRF_FUSION, DenseLegConfig, EncoderConfig, IndexConfig, RerankConfig, config_to_dict
from medrag.errors import ConfigError
from medrag.ingest.store import write_corpus
from medrag.retrieve.fusion import rank, union_rows, weighted_fusion
from medrag.retrieve.hybrid import HybridRetriever

pytest.importorskip("faiss")
st = pytest.importorskip("sentence_transformers")

from test_index_roundtrip import fixture_chunks  # noqa: E402

QUERIES = ["first-line anticoagulant in atrial fibrillation", "gout flare treatment"]


def _tiny_leg(tiny_bert: Path) -> DenseLegConfig:
    encoder = EncoderConfig(model=str(tiny_bert), backend="transformers", pooling="mean", shard_rows=8)
    return DenseLegConfig(name="tiny", encoder=encoder, weight=0.5)


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, tiny_bert, tiny_bert_query, tiny_cross_encoder):
    root = tmp_path_factory.mktemp("pipeline")
    write_corpus(root / "corpus", fixture_chunks(), source="fixture")
    base = IndexConfig(encoder=EncoderConfig(model=str(tiny_bert_query), backend="transformers", shard_rows=8))
    medrag.build_index([root / "corpus"], root / "base", base, progress=False)
    # a second dense leg by config alone, through the CLI
    legged = dataclasses.replace(base, legs=(_tiny_leg(tiny_bert),))
    (root / "legged.json").write_text(json.dumps(config_to_dict(legged)))
    result = CliRunner().invoke(cli, ["index", "build", "--corpus", str(root / "corpus"), "--out",
                                      str(root / "legged"), "--config", str(root / "legged.json"), "--quiet"])
    assert result.exit_code == 0, result.output
    # a re-ranker by config alone, through the Python API
    reranked = dataclasses.replace(base, rerank=RerankConfig(model=str(tiny_cross_encoder), depth=10, batch_size=4))
    medrag.build_index([root / "corpus"], root / "reranked", reranked, progress=False)
    return root


def _hits(retriever, query, k=5):
    return [(h.chunk_id, round(h.score, 5)) for h in retriever.search(query, k=k)]


def test_a_second_dense_leg_by_config(indexes, tiny_bert):
    legged = medrag.load_index(indexes / "legged")
    assert [leg.name for leg in legged.legs] == ["bm25", "dense", "tiny"] and legged.weights == (0.4, 0.6, 0.5)
    assert legged.modes == ["hybrid", "bm25", "dense", "tiny"]
    assert legged.manifest.leg("tiny").dim == 32 and legged.manifest.dense.dim == 32 and "dense-tiny/vectors.npy" in legged.manifest.files
    base = medrag.load_index(indexes / "base")
    for mode in ("bm25", "dense"):  # the existing legs are untouched by the new one
        for q in QUERIES:
            assert _hits(legged.with_options(mode=mode), q) == _hits(base.with_options(mode=mode), q)
    # the leg alone: exact inner product of its query vector with its stored vectors
    tiny = legged.with_options(mode="tiny")
    leg = legged.legs[2]
    vectors = np.load(indexes / "legged" / "dense-tiny" / "vectors.npy")
    row_of = {c.chunk_id: i for i, c in enumerate(legged.corpus.take(list(range(len(vectors)))))}
    for q in QUERIES:
        exact = vectors @ leg.encode([q])[0]
        hits = tiny.search(q, k=5)
        np.testing.assert_allclose([h.score for h in hits], np.sort(exact)[::-1][:5], rtol=1e-5)
        np.testing.assert_allclose([h.score for h in hits], exact[[row_of[h.chunk_id] for h in hits]], rtol=1e-5)


def test_hybrid_fuses_every_leg(indexes):
    legged = medrag.load_index(indexes / "legged")
    fusion = legged.fusion
    for q in QUERIES:
        per_leg = [leg.candidates([q], fusion.depth, None)[0] for leg in legged.legs]
        pool = union_rows(*[c.rows for c in per_leg])
        fused = weighted_fusion([c.rescore(pool) for c in per_leg], legged.weights, fusion.normalization)
        rows, scores = rank(pool, fused, 5)
        got = legged.search(q, k=5)
        assert [h.chunk_id for h in got] == [c.chunk_id for c in legged.corpus.take(rows.tolist())]
        np.testing.assert_allclose([h.score for h in got], scores, rtol=1e-5)
    base = medrag.load_index(indexes / "base")
    assert any(_hits(legged, q) != _hits(base, q) for q in QUERIES)  # the leg takes part


def test_feedback_applies_to_every_leg_in_fusion_only(indexes):
    """PRF_FUSION expands the BM25 leg (RM3) and both dense legs (Rocchio) inside hybrid search; a leg searched
    alone is the plain query."""
    legged = medrag.load_index(indexes / "legged")
    prf = legged.with_options(fusion=PRF_FUSION)
    for q in QUERIES:
        hits = prf.search(q, k=5)
        assert len(hits) == 5 and all(hits[i].score >= hits[i + 1].score for i in range(4))
    assert any(_hits(prf, q) != _hits(legged, q) for q in QUERIES)
    for mode in ("bm25", "dense", "tiny"):
        assert [_hits(prf.with_options(mode=mode), q) for q in QUERIES] == \
            [_hits(legged.with_options(mode=mode), q) for q in QUERIES]


def test_unknown_mode_names_the_legs(indexes):
    with pytest.raises(ConfigError, match="tiny"):
        medrag.load_index(indexes / "legged", mode="splade")


def _expected_rerank(retriever: HybridRetriever, cross: Path, query: str, depth: int, k: int):
    """The first-stage top ``depth`` re-sorted by the cross-encoder's own scores (ties: lower row)."""
    plain = HybridRetriever(retriever.path, retriever.manifest, retriever.corpus, retriever.legs,
                            retriever.weights, retriever.fusion, retriever.mode, None)
    first = plain.search(query, k=depth)
    model = st.CrossEncoder(str(cross))
    scores = np.asarray(model.predict([(query, h.text) for h in first]), dtype=np.float32).reshape(len(first), -1)[:, 0]
    order = sorted(range(len(first)), key=lambda i: (-scores[i], i))[:k]
    return [first[i].chunk_id for i in order], [float(scores[i]) for i in order]


def test_a_reranker_by_config(indexes, tiny_cross_encoder):
    reranked = medrag.load_index(indexes / "reranked")
    assert reranked.reranker is not None and reranked.reranker.depth == 10
    for q in QUERIES:
        ids, scores = _expected_rerank(reranked, tiny_cross_encoder, q, 10, 5)
        got = reranked.search(q, k=5)
        assert [h.chunk_id for h in got] == ids and [h.rank for h in got] == [1, 2, 3, 4, 5]
        np.testing.assert_allclose([h.score for h in got], scores, rtol=1e-4, atol=1e-6)


def test_rerank_per_call_through_the_cli(indexes, tiny_cross_encoder):
    base = medrag.load_index(indexes / "base")
    q = QUERIES[0]
    ids, scores = _expected_rerank(base, tiny_cross_encoder, q, 8, 3)
    result = CliRunner().invoke(cli, ["search", q, "--index", str(indexes / "base"), "-k", "3", "--json",
                                      "--rerank-model", str(tiny_cross_encoder), "--rerank-depth", "8"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["hits"]
    assert [h["chunk_id"] for h in hits] == ids
    np.testing.assert_allclose([h["score"] for h in hits], scores, rtol=1e-4, atol=1e-6)
    bad = CliRunner().invoke(cli, ["search", q, "--index", str(indexes / "base"), "--rerank-depth", "8"])
    assert bad.exit_code != 0 and "--rerank-model" in bad.output


def test_rerank_over_http(indexes, tiny_cross_encoder):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from medrag.integrations.server import create_app

    reranked = medrag.load_index(indexes / "reranked")
    q = QUERIES[1]
    ids, _ = _expected_rerank(reranked, tiny_cross_encoder, q, 10, 4)
    with TestClient(create_app(reranked), base_url="http://127.0.0.1") as client:
        response = client.post("/search", json={"query": q, "k": 4})
    assert response.status_code == 200, response.text
    assert [h["chunk_id"] for h in response.json()["hits"]] == ids
