"""``--engine ray`` on a local Ray instance gives the same corpus and the same hits as the local engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import medrag
from medrag.cli import cli
from medrag.ingest.synthetic import write_medline

pytest.importorskip("ray")
pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

pytestmark = pytest.mark.ray

QUERIES = ["anticoagulation warfarin bleeding risk", "insulin metformin diabetes cohort", "tumour chemotherapy"]


def _invoke(*args: str) -> dict:
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _hits(index, mode: str) -> list[list[tuple[str, float]]]:
    retriever = medrag.load_index(index, mode=mode)
    return [[(h.chunk_id, h.score) for h in retriever.search(q, k=10)] for q in QUERIES]


def test_ray_ingest_and_build_match_local_engine(tmp_path):
    inputs = tmp_path / "raw"
    inputs.mkdir()
    for i in range(3):  # three input files = three ingest units
        write_medline(inputs / f"pubmed-{i}.xml", 12, first_pmid=1 + 1000 * i, seed=i)
    local = _invoke("corpus", "ingest", "pubmed", "-i", str(inputs), "--out", str(tmp_path / "c-local"), "-q")
    ray_corpus = _invoke("corpus", "ingest", "pubmed", "-i", str(inputs), "--out", str(tmp_path / "c-ray"),
                         "-q", "--engine", "ray")
    assert ray_corpus["chunks"] == local["chunks"] > 20
    assert ray_corpus["fingerprint"] == local["fingerprint"]  # same shards, byte for byte

    _invoke("index", "build", "--corpus", str(tmp_path / "c-local"), "--out", str(tmp_path / "i-local"), "--quiet")
    built = _invoke("index", "build", "--corpus", str(tmp_path / "c-ray"), "--out", str(tmp_path / "i-ray"),
                    "--quiet", "--engine", "ray", "--num-cpus", "2", "--object-store-mb", "100",
                    "--encode-actors", "1")
    assert built["build"]["engine"] == "ray" and built["rows"] == local["chunks"]
    for name in ("data.csc.index", "indices.csc.index", "indptr.csc.index", "term_bounds.medrag"):
        a = np.load(tmp_path / "i-local" / "bm25" / f"{name}.npy")
        b = np.load(tmp_path / "i-ray" / "bm25" / f"{name}.npy")
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.load(tmp_path / "i-ray" / "dense" / "vectors.npy"),
                               np.load(tmp_path / "i-local" / "dense" / "vectors.npy"), atol=1e-5)
    for mode in ("bm25", "dense", "hybrid"):
        want, got = _hits(tmp_path / "i-local", mode), _hits(tmp_path / "i-ray", mode)
        for w, g in zip(want, got, strict=True):
            assert [c for c, _ in g] == [c for c, _ in w] and len(w) == 10
            np.testing.assert_allclose([s for _, s in g], [s for _, s in w], rtol=1e-4, atol=1e-5)
