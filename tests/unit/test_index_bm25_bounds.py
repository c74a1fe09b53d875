"""Persisted per-term BM25 bounds (``term_bounds.medrag.npy``): written by every build, listed in the manifest,
memory-mapped on load; an index without the file (built before it existed) computes them lazily, same results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_scale_bm25_parts import _batches, _texts  # the parts tests' synthetic texts

import medrag
from medrag.config import BM25Config, IndexConfig
from medrag.errors import IndexFormatError
from medrag.index import bm25_query
from medrag.index.bm25 import BM25Index, build_bm25
from medrag.index.bm25_bounds import BOUNDS_FILE, BoundsAccumulator, load_bounds
from medrag.index.bm25_parts import build_bm25_in_parts
from medrag.index.bm25_query import term_bounds
from medrag.ingest.store import write_corpus
from medrag.manifest import DIGEST_KEY, sha256_file, write_manifest
from medrag.types import Chunk, Metadata


def _computed(path: Path) -> np.ndarray:
    return term_bounds(np.load(path / "indptr.csc.index.npy"), np.load(path / "data.csc.index.npy"))


QUERIES = ("apixaban dose renal", "beta blocker heart failure", "rareterm22", "warfarin stroke bleeding risk elderly",
           "metformin insulin hba1c ckd egfr trial", "nothing known here")


def _results(index: BM25Index, k: int = 10) -> list:
    out = [index.search(q, k) for q in QUERIES]
    out += index.search_many(list(QUERIES), k)
    return [(rows.tolist(), scores.view(np.int32).tolist()) for rows, scores in out]


@pytest.fixture
def pruning_on(monkeypatch):
    """Pruning forced on for the small corpora of these tests (the bounds are used, not only loaded)."""
    monkeypatch.setattr(bm25_query, "_PRUNE_MIN_DOCS", 0)
    monkeypatch.setattr(bm25_query, "_PRUNE_MIN_POSTINGS", 0)


@pytest.mark.parametrize("config", [BM25Config(), BM25Config(method="atire", idf_method="robertson")])
def test_single_shot_and_parts_write_identical_bounds(tmp_path, config):
    batches = _batches(_texts(230), 20)
    build_bm25(batches, tmp_path / "single", config)
    build_bm25_in_parts(batches, tmp_path / "merged", config, part_rows=40)
    single = np.load(tmp_path / "single" / BOUNDS_FILE, allow_pickle=False)
    merged = np.load(tmp_path / "merged" / BOUNDS_FILE, allow_pickle=False)
    assert single.dtype == np.float64 and merged.dtype == np.float64
    np.testing.assert_array_equal(single, _computed(tmp_path / "single"))
    np.testing.assert_array_equal(merged, single)
    assert sha256_file(tmp_path / "merged" / BOUNDS_FILE) == sha256_file(tmp_path / "single" / BOUNDS_FILE)
    assert single.size == len(json.loads((tmp_path / "single" / "vocab.index.json").read_text()))


def test_negative_postings_write_empty_bounds_on_both_paths(tmp_path, monkeypatch):
    """A negative posting value (not produced by medrag's formulas; forced here) turns pruning off: empty file."""
    from medrag.index import bm25, bm25_parts

    original = bm25.scored

    def negative_first_term(batch, *args):
        out = original(batch, *args)
        out[batch.terms == 0] *= -1
        return out

    monkeypatch.setattr(bm25, "scored", negative_first_term)
    monkeypatch.setattr(bm25_parts, "scored", negative_first_term)
    batches = _batches(_texts(120), 20)
    build_bm25(batches, tmp_path / "single", BM25Config())
    build_bm25_in_parts(batches, tmp_path / "merged", BM25Config(), part_rows=40)
    for name in ("single", "merged"):
        assert np.load(tmp_path / name / "data.csc.index.npy").min() < 0
        assert np.load(tmp_path / name / BOUNDS_FILE).shape == (0,)
        assert BM25Index.load(tmp_path / name, BM25Config())._scorer.bounds().size == 0


def test_bounds_are_loaded_memory_mapped_and_equal_exhaustive_results(tmp_path, pruning_on):
    build_bm25(_batches(_texts(230), 20), tmp_path / "idx", BM25Config())
    index = BM25Index.load(tmp_path / "idx", BM25Config())
    bounds = index._scorer.bounds()
    assert isinstance(index._scorer._ub, np.ndarray) and not bounds.flags.writeable
    assert isinstance(load_bounds(tmp_path / "idx", bounds.size), np.memmap)
    np.testing.assert_array_equal(bounds, _computed(tmp_path / "idx"))
    got = _results(index)
    exhaustive = index._scorer
    for q, (rows, scores) in zip(QUERIES, got, strict=False):
        want = bm25_query.top_rows(*exhaustive.score(*index.query_terms(q)), 10)
        assert rows == want[0].tolist() and scores == want[1].view(np.int32).tolist()


def test_index_without_bounds_file_loads_and_searches_the_same(tmp_path, pruning_on):
    build_bm25(_batches(_texts(230), 20), tmp_path / "idx", BM25Config())
    with_file = _results(BM25Index.load(tmp_path / "idx", BM25Config()))
    (tmp_path / "idx" / BOUNDS_FILE).unlink()  # an index built before the file existed
    index = BM25Index.load(tmp_path / "idx", BM25Config())
    assert index._scorer._ub is None  # lazy: computed on the first pruned query
    assert _results(index) == with_file
    np.testing.assert_array_equal(index._scorer.bounds(), _computed(tmp_path / "idx"))
    assert not (tmp_path / "idx" / BOUNDS_FILE).exists()  # loading and searching write nothing


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros(10_000), np.zeros(5, np.float32), np.zeros((2, 2))])
def test_bounds_of_the_wrong_shape_or_type_are_an_index_format_error(tmp_path, bad):
    build_bm25(_batches(_texts(40), 20), tmp_path / "idx", BM25Config())
    np.save(tmp_path / "idx" / BOUNDS_FILE, bad, allow_pickle=False)
    with pytest.raises(IndexFormatError, match=f"{BOUNDS_FILE}.*rebuild the index") as err:
        BM25Index.load(tmp_path / "idx", BM25Config())
    assert "\n" not in str(err.value)


def test_unreadable_bounds_file_is_an_index_format_error(tmp_path):
    build_bm25(_batches(_texts(40), 20), tmp_path / "idx", BM25Config())
    (tmp_path / "idx" / BOUNDS_FILE).write_bytes(b"not a npy file")
    with pytest.raises(IndexFormatError, match="unreadable.*verify"):
        BM25Index.load(tmp_path / "idx", BM25Config())


def test_empty_bounds_file_turns_pruning_off(tmp_path, pruning_on):
    build_bm25(_batches(_texts(230), 20), tmp_path / "idx", BM25Config())
    want = _results(BM25Index.load(tmp_path / "idx", BM25Config()))
    np.save(tmp_path / "idx" / BOUNDS_FILE, np.zeros(0), allow_pickle=False)
    index = BM25Index.load(tmp_path / "idx", BM25Config())
    assert index._scorer.bounds().size == 0
    assert _results(index) == want


def test_accumulator_equals_term_bounds_slice_by_slice():
    rng = np.random.default_rng(0)
    n_terms = 50
    values = rng.random(4000).astype(np.float32)
    terms = rng.integers(0, n_terms - 5, size=values.size)  # the last terms have no postings
    acc = BoundsAccumulator(n_terms)
    for lo in range(0, values.size, 700):  # like the merge: one slice of documents at a time
        t, v = terms[lo: lo + 700], values[lo: lo + 700]
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
        acc.add(t[starts], starts, v)
    order = np.argsort(terms, kind="stable")
    indptr = np.zeros(n_terms + 1, np.int64)
    indptr[1:] = np.cumsum(np.bincount(terms, minlength=n_terms))
    np.testing.assert_array_equal(acc.result(), term_bounds(indptr, values[order]))
    acc.add(np.array([1]), np.array([0]), np.array([-1.0], np.float32))
    assert acc.result().size == 0  # a negative value: never prune (as term_bounds)


def _corpus(root: Path, n: int = 60) -> Path:
    texts = _texts(n, seed=5)
    chunks = [Chunk(f"d{i}#0", f"d{i}", "fixture", f"title {i}", "", text or "empty", 0, Metadata(year=2020))
              for i, text in enumerate(texts)]
    write_corpus(root / "corpus", chunks, source="fixture")
    return root / "corpus"


def test_built_index_lists_bounds_in_manifest_and_verifies(tmp_path):
    index = Path(medrag.build_index([_corpus(tmp_path)], tmp_path / "index", IndexConfig(dense=False),
                                    progress=False))
    rel = f"bm25/{BOUNDS_FILE}"
    data = json.loads((index / "manifest.json").read_text())
    assert data["files"][rel]["sha256"] == sha256_file(index / rel)
    np.testing.assert_array_equal(np.load(index / rel), _computed(index / "bm25"))
    retriever = medrag.load_index(index, verify=True, mode="bm25")
    assert retriever.search("apixaban dose", k=3)
    # a damaged bounds file is caught by verify (its sha256 is in the manifest)
    bounds = np.load(index / rel)
    if bounds.size:
        bounds[0] += 1.0
        np.save(index / rel, bounds, allow_pickle=False)
        with pytest.raises(IndexFormatError, match=f"{BOUNDS_FILE} is corrupt"):
            medrag.load_index(index, verify=True, mode="bm25")


def test_old_index_without_bounds_in_manifest_loads(tmp_path):
    index = Path(medrag.build_index([_corpus(tmp_path)], tmp_path / "index", IndexConfig(dense=False),
                                    progress=False))
    want = [(h.chunk_id, h.score) for h in medrag.load_index(index, mode="bm25").search("warfarin stroke risk", k=5)]
    rel = f"bm25/{BOUNDS_FILE}"
    data = json.loads((index / "manifest.json").read_text())
    data.pop(DIGEST_KEY)
    del data["files"][rel]  # the manifest of an index built before the bounds file existed
    write_manifest(index / "manifest.json", data)
    (index / rel).unlink()
    retriever = medrag.load_index(index, verify=True, mode="bm25")
    assert retriever.bm25._scorer._ub is None
    assert [(h.chunk_id, h.score) for h in retriever.search("warfarin stroke risk", k=5)] == want
