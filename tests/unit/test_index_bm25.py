"""BM25: parity with rank-bm25 and with bm25s' own builder, streaming build, masks, top-k."""

from __future__ import annotations

import numpy as np
import pytest

from medrag.config import BM25Config
from medrag.index.bm25 import BM25Index, build_bm25, topk
from medrag.index.tokenizer import BiomedicalTokenizer

DOCS = [
    "Apixaban 5 mg twice daily reduces stroke in atrial fibrillation",
    "Warfarin with a target INR of 2.0-3.0 for mechanical heart valves",
    "Beta-blockers control the ventricular rate in atrial fibrillation",
    "Metformin is first-line therapy for type 2 diabetes",
    "SGLT2 inhibitors reduce heart failure hospitalisation in diabetes",
    "High-intensity statin therapy for LDL cholesterol of 190 mg/dL",
    "Gout flares are treated with colchicine or NSAIDs",
    "Allopurinol is the preferred urate-lowering therapy in gout",
    "CURB-65 grades community-acquired pneumonia severity",
    "Sepsis is organ dysfunction caused by infection; qSOFA screens for it",
    "Dabigatran dose reduction when creatinine clearance is low",
    "Rivaroxaban 20 mg with the evening meal for stroke prevention",
]
QUERIES = ["atrial fibrillation stroke apixaban", "gout therapy", "heart failure diabetes", "dose reduction"]


def _build(tmp_path, config, batches):
    build_bm25(batches, tmp_path / "bm25", config)
    return BM25Index.load(tmp_path / "bm25", config)


def test_parity_with_rank_bm25_okapi(tmp_path):
    rank_bm25 = pytest.importorskip("rank_bm25")
    config = BM25Config(method="atire", idf_method="robertson")  # rank-bm25's BM25Okapi variant
    index = _build(tmp_path, config, [DOCS])
    tok = BiomedicalTokenizer(config)
    reference = rank_bm25.BM25Okapi([tok.analyze(d) for d in DOCS], k1=config.k1, b=config.b)
    for query in QUERIES:
        ref = reference.get_scores(tok.analyze(query))
        assert ref.min() >= 0  # no negative idf in this corpus, so the variants coincide exactly
        ours = index.scores(query)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
        rows, scores = index.search(query, 5)
        expected = sorted(np.flatnonzero(ref > 0), key=lambda i: (-ref[i], i))[:5]
        assert rows.tolist() == expected
        np.testing.assert_allclose(scores, ref[rows], rtol=1e-5)


def test_parity_with_bm25s_builder(tmp_path):
    import bm25s

    config = BM25Config()
    index = _build(tmp_path, config, [DOCS])
    tok = BiomedicalTokenizer(config)
    reference = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
    reference.index([tok.analyze(d) for d in DOCS], show_progress=False)
    for query in QUERIES:
        np.testing.assert_allclose(index.scores(query), reference.get_scores(tok.analyze(query)), rtol=1e-6)


def test_streaming_batches_build_the_same_index(tmp_path):
    config = BM25Config()
    one = _build(tmp_path / "a", config, [DOCS])
    many = _build(tmp_path / "b", config, [DOCS[:5], DOCS[5:6], DOCS[6:]])
    for query in QUERIES:
        np.testing.assert_array_equal(one.scores(query), many.scores(query))


def test_saved_in_bm25s_format_and_loaded_memory_mapped(tmp_path):
    index = _build(tmp_path, BM25Config(), [DOCS])
    assert isinstance(index.model.scores["data"], np.memmap)
    stats = build_bm25([DOCS], tmp_path / "again", BM25Config())
    assert stats["documents"] == len(DOCS) and stats["vocabulary"] == len(index.vocab)


def test_mask_is_applied_before_the_cut(tmp_path):
    index = _build(tmp_path, BM25Config(), [DOCS])
    mask = np.zeros(len(DOCS), dtype=bool)
    mask[[1, 10, 11]] = True  # rows that are not the best matches
    rows, _ = index.search("stroke prevention dose", 2, mask)
    assert set(rows.tolist()) <= {1, 10, 11} and len(rows) == 2


def test_unknown_terms_and_empty_matches(tmp_path):
    index = _build(tmp_path, BM25Config(), [DOCS])
    rows, scores = index.search("zzzz qqqq", 5)
    assert rows.size == 0 and scores.size == 0
    assert not index.scores("zzzz").any()


def test_topk_breaks_ties_by_row_and_keeps_ties_at_the_cut():
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 0.0], dtype=np.float32)
    rows, vals = topk(scores, 2)
    assert rows.tolist() == [1, 2] and vals.tolist() == [3.0, 3.0]
    rows, _ = topk(scores, 10, positive_only=True)
    assert rows.tolist() == [1, 2, 4, 3, 0]


def test_sparse_scores_and_lookup_agree_with_the_dense_vector(tmp_path):
    from medrag.index.bm25 import lookup

    index = _build(tmp_path, BM25Config(), [DOCS])
    for query in QUERIES:
        full = index.scores(query)
        rows, vals = index.sparse_scores(query)
        assert rows.tolist() == np.flatnonzero(full).tolist()
        np.testing.assert_array_equal(vals, full[rows])
        probe = np.arange(len(DOCS))
        np.testing.assert_array_equal(lookup((rows, vals), probe), full)


def test_repeated_terms_collapse_to_weights_and_read_postings_once(tmp_path):
    import time

    index = _build(tmp_path, BM25Config(), [DOCS])
    single = index.scores("gout therapy")
    t = time.perf_counter()
    repeated = index.scores("gout therapy " * 7000)  # ~90,000 characters, 14,000 terms, 2 distinct
    assert time.perf_counter() - t < 1.0
    np.testing.assert_allclose(repeated, single * 7000, rtol=1e-5)
    terms, weights = index.query_terms("gout gout therapy gout")
    assert terms.tolist() == [index.vocab["gout"], index.vocab["therapi"]] and weights.tolist() == [3.0, 1.0]
    # the same ranking as counting each repetition (bm25s, rank-bm25)
    np.testing.assert_allclose(index.scores("gout gout therapy"), 2 * index.scores("gout") + index.scores("therapy"),
                               rtol=1e-6)


def test_a_megabyte_query_is_refused_quickly_with_one_line(tmp_path):
    import time

    from medrag.errors import QueryError

    index = _build(tmp_path, BM25Config(), [DOCS])
    t = time.perf_counter()
    with pytest.raises(QueryError, match=r"^query has 1,250,000 characters; the limit is 100,000") as err:
        index.search("gout " * 250_000, 10)
    assert time.perf_counter() - t < 0.5 and "\n" not in str(err.value)
    with pytest.raises(QueryError):  # a batch is checked before any query is scored
        index.search_many(["gout", "gout " * 250_000], 10)


def test_search_many_equals_search_and_dense_order(tmp_path):
    index = _build(tmp_path, BM25Config(), [DOCS])
    many = index.search_many(QUERIES, 3)
    for query, (rows, scores) in zip(QUERIES, many, strict=True):
        one_rows, one_scores = index.search(query, 3)
        assert rows.tolist() == one_rows.tolist() and scores.tolist() == one_scores.tolist()
        full = index.scores(query)
        expected = sorted(np.flatnonzero(full > 0), key=lambda i: (-full[i], i))[:3]
        assert rows.tolist() == expected


def test_numba_and_numpy_paths_agree(tmp_path, monkeypatch):
    pytest.importorskip("numba")
    from medrag.index import bm25_query

    assert bm25_query._kernels() is not None

    index = _build(tmp_path, BM25Config(), [DOCS * 3])
    mask = np.arange(len(DOCS) * 3) % 2 == 0
    queries = [*QUERIES, "atrial atrial fibrillation stroke stroke therapy", "zzzz"]
    fused = [(index.search(q, 4), index.search(q, 4, mask), index.sparse_scores(q)) for q in queries]
    monkeypatch.setattr(bm25_query, "_KERNELS", [None])  # numba unavailable: the numpy path
    for q, (top, masked, sparse) in zip(queries, fused, strict=True):
        for a, b in ((top, index.search(q, 4)), (masked, index.search(q, 4, mask)), (sparse, index.sparse_scores(q))):
            assert a[0].tolist() == b[0].tolist()
            np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threaded_batches_equal_single_searches(tmp_path, threads):
    """A batch cut into parts scored on several threads gives each query's own ``search`` result (masked too)."""
    pytest.importorskip("numba")
    index = _build(tmp_path, BM25Config(), [DOCS * 4])
    mask = np.arange(len(DOCS) * 4) % 3 != 0
    queries = [*QUERIES, "zzzz", "stroke stroke stroke"] * 5  # 2+ parts of at least 8 queries each
    for m in (None, mask):
        many = index.search_many(queries, 5, m, threads=threads)
        assert len(many) == len(queries)
        for query, (rows, scores) in zip(queries, many, strict=True):
            one_rows, one_scores = index.search(query, 5, m)
            assert rows.tolist() == one_rows.tolist() and scores.tolist() == one_scores.tolist()


def test_load_index_threads_knob_is_checked():
    from medrag.errors import ConfigError
    from medrag.retrieve.load import load_index

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="threads"):
            load_index("/nonexistent-index", mode="bm25", threads=bad)


def test_load_index_rows_memory_answers_like_mmap(tmp_path):
    """``rows="memory"`` decodes the corpus once at load; every answer equals the memory-mapped default."""
    from medrag.config import IndexConfig
    from medrag.errors import ConfigError
    from medrag.index import build_index
    from medrag.ingest.store import write_corpus
    from medrag.retrieve.load import load_index
    from medrag.types import Chunk, Metadata

    chunks = [Chunk(f"c:{i}#0", f"c:{i}", "test", f"T {i}", "S", text, 0,
                    Metadata(pmid=str(i), mesh=("Humans",)) if i % 2 else Metadata())
              for i, text in enumerate(["warfarin bleeding risk", "aspirin héart attack", "warfarin and aspirin",
                                        "sepsis fluids", "insulin diabetes 糖尿病"])]
    write_corpus(tmp_path / "c", chunks, source="test", shard_rows=2)
    build_index([tmp_path / "c"], tmp_path / "i", IndexConfig(dense=False), progress=False)
    mmap = load_index(tmp_path / "i", mode="bm25")
    held = load_index(tmp_path / "i", mode="bm25", rows="memory")
    assert (mmap.corpus.rows, held.corpus.rows) == ("mmap", "memory")
    queries = ["warfarin", "aspirin heart", "diabetes", "nothing matches"]
    assert [held.search(q, k=3) for q in queries] == [mmap.search(q, k=3) for q in queries]
    assert held.batch_search(queries, k=3) == mmap.batch_search(queries, k=3)
    assert held.search("warfarin", k=3)[0].text
    for bad in ("disk", "", None):
        with pytest.raises(ConfigError, match="rows"):
            load_index(tmp_path / "i", mode="bm25", rows=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("config", [BM25Config(), BM25Config(stemmer=None, hyphens="split", greek="keep")])
def test_query_terms_remember_words_and_equal_the_analyzer(tmp_path, config, monkeypatch):
    """Each word's term id is resolved once and remembered (the memory is bounded and cleared when full);
    the ids and weights always equal the analyzer's terms looked up in the vocabulary, one query or a batch."""
    from medrag.index import bm25_query

    index = _build(tmp_path, config, [DOCS])
    tok = BiomedicalTokenizer(config)

    def expected(query: str) -> tuple[list[int], list[float]]:
        counts: dict[int, int] = {}
        for term in tok.analyze(query):
            if term in index.vocab:
                counts[index.vocab[term]] = counts.get(index.vocab[term], 0) + 1
        return list(counts), [float(c) for c in counts.values()]

    queries = [*QUERIES, "The stroke, the STROKE and β-blockers", "zzzz of the", "", "Gout gout GOUT 2.0-3.0 mg/dL"]
    monkeypatch.setattr(bm25_query, "_MAX_WORDS", 4)  # forces clearing between queries
    for _ in range(2):  # cold, then from the remembered words
        for query in queries:
            terms, weights = index.query_terms(query)
            assert (terms.tolist(), weights.tolist()) == expected(query)
        starts, terms, weights = index._terms.many(queries)
        for q, query in enumerate(queries):
            a, b = starts[q], starts[q + 1]
            assert (terms[a:b].tolist(), weights[a:b].tolist()) == expected(query)
    assert len(index._terms._ids) <= 4 + max(len(tok.words(q)) for q in queries)
