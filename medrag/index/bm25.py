"""BM25 on bm25s: a streaming, memory-bounded build and memory-mapped, maskable scoring.

The saved directory is bm25s' own format (``bm25s.BM25.save``: CSC ``data``/``indices``/``indptr`` ``.npy``
arrays, ``vocab.index.json``, ``params.index.json``), loaded with ``bm25s.BM25.load(mmap=True)``, plus
medrag's per-term score bounds (``bm25_bounds.BOUNDS_FILE``, for exact top-k pruning; bm25s ignores it),
memory-mapped too.

The build does not materialise bm25s' list-of-lists of token ids: rows are tokenised batch by batch
(``TermIds``: each distinct word is stemmed once) and reduced at once to compact (doc, term, tf) arrays;
idf and term-frequency components are medrag's own formulas (``bm25_formulas``, the same as bm25s') applied to
whole arrays, and the files are written here in bm25s' documented layout (no bm25s private API is used). Peak
memory is a small multiple of the index itself rather than of the corpus text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import BM25Config
from ..errors import IndexFormatError
from .bm25_bounds import BoundsAccumulator, load_bounds, term_bounds, write_bounds
from .bm25_formulas import idf, term_weight
from .bm25_query import PostingScorer, QueryTerms, top_rows
from .tokenizer import BiomedicalTokenizer

__all__ = ["BM25_FILES", "build_bm25", "write_bm25_files", "scored", "BM25Index", "topk", "top_sparse", "lookup"]

log = logging.getLogger(__name__)

BM25_FILES = (
    "data.csc.index.npy",
    "indices.csc.index.npy",
    "indptr.csc.index.npy",
    "vocab.index.json",
    "params.index.json",
)


@dataclass
class _Batch:
    """One batch of documents as (term, tf) pairs sorted by (document, term)."""

    terms: np.ndarray  # int32
    tfs: np.ndarray  # uint16 (uint32 if a term occurs 65536+ times in one document)
    per_doc: np.ndarray  # int32: distinct terms of each document
    lengths: np.ndarray  # float32: terms of each document (BM25 document length)


@dataclass
class _Postings:
    """The corpus as compact per-batch (term, tf) arrays (no document id per pair: ``per_doc`` counts)."""

    batches: list[_Batch]
    n_docs: int = 0
    nonzeros: int = 0
    total_length: float = 0.0

    def add(self, flat: np.ndarray, lengths: np.ndarray) -> None:
        """One batch: concatenated term ids and each document's number of terms."""
        doc = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        keys, tf = np.unique((doc << 32) | flat, return_counts=True)
        tf_type = np.uint16 if tf.size == 0 or tf.max() < 2**16 else np.uint32
        per_doc = np.bincount((keys >> 32).astype(np.int64), minlength=len(lengths)).astype(np.int32)
        self.batches.append(
            _Batch((keys & 0xFFFFFFFF).astype(np.int32), tf.astype(tf_type), per_doc, lengths.astype(np.float32))
        )
        self.n_docs += len(lengths)
        self.nonzeros += keys.size
        self.total_length += float(lengths.sum())


def _idf(df: np.ndarray, n_docs: int, method: str) -> np.ndarray:
    return idf(df, n_docs, method)


def scored(batch: _Batch, idf_array: np.ndarray, avg_len: float, config: BM25Config) -> np.ndarray:
    """The stored BM25 score (idf x term weight, float32) of each (document, term) pair of ``batch``."""
    doc_len = np.repeat(batch.lengths, batch.per_doc)
    weights = term_weight(batch.tfs.astype(np.float32), doc_len, avg_len or 1.0, config.k1, config.b, config.method)
    return (idf_array[batch.terms] * weights).astype(np.float32)


def write_bm25_files(out: Path, arrays: dict[str, np.ndarray] | None, vocab: dict[str, int], n_docs: int,
                     config: BM25Config, *, bounds: np.ndarray | None = None) -> None:
    """The bm25s directory layout (``bm25s.BM25.load`` reads it): CSC ``.npy`` arrays (``arrays`` without
    ``data``/``indices``: the caller writes them itself), ``vocab.index.json``, ``params.index.json``; and
    medrag's ``term_bounds.medrag.npy``: ``bounds``, or (None) ``term_bounds`` of ``arrays``' indptr/data."""
    out.mkdir(parents=True, exist_ok=True)
    if bounds is None:
        if not arrays or "data" not in arrays or "indptr" not in arrays:
            raise ValueError("write_bm25_files: pass the term bounds when the caller writes data itself")
        bounds = term_bounds(arrays["indptr"], arrays["data"])
    for name, array in (arrays or {}).items():
        np.save(out / f"{name}.csc.index.npy", array, allow_pickle=False)
    write_bounds(out, bounds)
    (out / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    params = {"k1": config.k1, "b": config.b, "delta": config.delta, "method": config.method,
              "idf_method": config.idf_method or config.method, "dtype": "float32", "int_dtype": "int32",
              "num_docs": n_docs, "backend": "numpy"}
    (out / "params.index.json").write_text(json.dumps(params, indent=4), encoding="utf-8")


def _place(batch: _Batch, first_doc: int, scores: np.ndarray, cursor: np.ndarray,
           data: np.ndarray, indices: np.ndarray, bounds: BoundsAccumulator | None = None) -> None:
    """Write one batch's scores into the CSC arrays (counting sort by term; documents stay ascending); with
    ``bounds``, gather the per-term maxima of the scores placed."""
    doc = np.repeat(np.arange(first_doc, first_doc + batch.per_doc.size, dtype=np.int32), batch.per_doc)
    order = np.argsort(batch.terms, kind="stable")
    terms = batch.terms[order]
    starts = np.flatnonzero(np.r_[True, terms[1:] != terms[:-1]]) if terms.size else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, terms.size])
    within = np.arange(terms.size) - np.repeat(starts, sizes)
    positions = cursor[terms] + within
    values = scores[order]
    data[positions] = values
    indices[positions] = doc[order]
    if bounds is not None and terms.size:
        bounds.add(terms[starts], starts, values)
    cursor[terms[starts]] += sizes


def _csc(postings: _Postings, n_vocab: int, config: BM25Config) -> dict[str, Any]:
    """CSC score matrix (docs x vocab) with the BM25 formulas, batch by batch.

    Peak memory: the output arrays (the index itself) plus the compact per-batch pairs, which are released
    as they are placed.
    """
    n_docs = postings.n_docs
    df = np.zeros(n_vocab, dtype=np.int64)
    for batch in postings.batches:
        df += np.bincount(batch.terms, minlength=n_vocab)
    idf_array = _idf(df, n_docs, config.idf_method or config.method)
    avg_len = (postings.total_length / n_docs) if n_docs else 1.0
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    cursor = indptr[:-1].copy()
    data = np.empty(postings.nonzeros, dtype=np.float32)
    indices = np.empty(postings.nonzeros, dtype=np.int32)
    first_doc = 0
    while postings.batches:
        batch = postings.batches.pop(0)
        _place(batch, first_doc, scored(batch, idf_array, avg_len, config), cursor, data, indices)
        first_doc += batch.per_doc.size
    return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}


def build_bm25(
    texts: Iterable[Sequence[str]],
    out: str | Path,
    config: BM25Config | None = None,
    *,
    progress: Any = None,
) -> dict[str, Any]:
    """Index ``texts`` (an iterable of batches of strings, in corpus row order) into ``out`` (bm25s format).

    ``progress`` (optional) is called with the number of rows done after every batch. Returns statistics
    for the manifest: documents, vocabulary size, non-zeros, average document length.
    """
    config = config or BM25Config()
    term_ids = BiomedicalTokenizer(config).term_ids()
    postings = _Postings([])
    for batch in texts:
        flat, lengths = term_ids.batch(batch)
        postings.add(flat, lengths)
        if progress is not None:
            progress(len(lengths))
    vocab = term_ids.term_to_id
    avg_len = postings.total_length / postings.n_docs if postings.n_docs else 0.0
    scores = _csc(postings, len(vocab), config)
    arrays = {"data": scores["data"], "indices": scores["indices"], "indptr": scores["indptr"]}
    write_bm25_files(Path(out), arrays, vocab, int(scores["num_docs"]), config)
    return {
        "documents": int(scores["num_docs"]),
        "vocabulary": len(vocab),
        "nonzeros": int(scores["data"].shape[0]),
        "avg_doc_terms": round(avg_len, 3),
    }


def topk(scores: np.ndarray, k: int, *, positive_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the ``k`` best entries, best first; ties go to the lower row (deterministic).

    ``positive_only`` drops entries whose score is not > 0 (BM25: documents sharing no query term).
    """
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if k < n:
        kth = np.partition(scores, n - k)[n - k]  # the k-th largest value: keep every row tied with it
        cand = np.flatnonzero(scores >= kth)
    else:
        cand = np.arange(n)
    order = np.lexsort((cand, -scores[cand].astype(np.float64)))[:k]
    rows = cand[order]
    vals = scores[rows]
    if positive_only:
        keep = vals > 0
        rows, vals = rows[keep], vals[keep]
    return rows.astype(np.int64), vals.astype(np.float32)


class BM25Index:
    """A saved bm25s index, memory-mapped, scored with the tokenizer it was built with.

    Queries are scored on their postings only (``bm25_query``): repeated terms collapse to weights, the
    query length is capped, and the cost does not grow with the corpus.
    """

    def __init__(self, model: Any, tokenizer: BiomedicalTokenizer, threads: int | None = None,
                 bounds: np.ndarray | None = None) -> None:
        self.model = model
        #: cores a batch is scored on (None: all; ``bm25_query.default_threads``)
        self.threads = threads
        self.tokenizer = tokenizer
        self.vocab: dict[str, int] = model.vocab_dict
        self.num_docs = int(model.scores["num_docs"])
        s = model.scores
        self._terms = QueryTerms(tokenizer, self.vocab)
        #: ``bounds``: the persisted per-term bounds (``bm25_bounds``); None: computed on the first pruned query
        self._scorer = PostingScorer(s["indptr"], s["indices"], s["data"], self.num_docs, bounds)

    @classmethod
    def load(cls, path: str | Path, config: BM25Config, *, mmap: bool = True) -> BM25Index:
        import bm25s

        path = Path(path)
        missing = [f for f in BM25_FILES if not (path / f).is_file()]
        if missing:
            raise IndexFormatError(f"{path}: BM25 file(s) missing: {', '.join(missing)}")
        try:
            model = bm25s.BM25.load(str(path), mmap=mmap, load_corpus=False)
        except (OSError, ValueError, KeyError, EOFError) as exc:  # numpy's text would suggest allow_pickle
            raise IndexFormatError(f"{path}: BM25 index is unreadable ({type(exc).__name__}); run `medrag index "
                                   "verify`, then rebuild the index") from None
        bounds = load_bounds(path, int(model.scores["indptr"].shape[0]) - 1)
        return cls(model, BiomedicalTokenizer(config), bounds=bounds)

    def term_ids(self, query: str) -> np.ndarray:
        """Distinct vocabulary ids of the query's terms, in first-occurrence order (unknown terms dropped)."""
        return self._terms(query)[0]

    def query_terms(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """``(term ids, weights)``: distinct known terms and how often each occurs in the query."""
        return self._terms(query)

    def sparse_scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)`` of the rows sharing a query term (rows sorted ascending; others score 0).

        A repeated query term counts once per repetition (as in bm25s and rank-bm25), read once.
        """
        return self._scorer.sorted_scores(*self._terms(query))

    def weighted_sparse_scores(self, terms: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``sparse_scores`` of an explicit weighted query: term ids and one float32 weight each."""
        return self._scorer.sorted_scores(np.asarray(terms, dtype=np.int64), np.asarray(weights, dtype=np.float32))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row (float32, length ``num_docs``)."""
        rows, vals = self._scorer.score(*self._terms(query))
        out = np.zeros(self.num_docs, dtype=np.float32)
        out[rows] = vals
        return out

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows with a positive score among rows allowed by ``mask`` (bool, or None = all)."""
        return self._scorer.top(*self._terms(query), k, mask)

    def search_many(
        self, queries: Sequence[str], k: int, mask: np.ndarray | None = None, threads: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``search`` for each query (every query is length-checked before any is scored), scored on up to
        ``threads`` cores (None: ``self.threads``, by default all)."""
        if len(queries) == 1:
            return [self.search(queries[0], k, mask)]
        starts, terms, weights = self._terms.many(queries)
        return self._scorer.top_flat(starts, terms, weights, k, mask, threads or self.threads)


def top_sparse(
    sparse: tuple[np.ndarray, np.ndarray], k: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of sparse ``(rows, scores)`` with a positive score, among rows allowed by ``mask``."""
    return top_rows(*sparse, k, mask)


def lookup(sparse: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Scores of arbitrary ``rows`` from sparse ``(sorted rows, scores)`` (0 where absent)."""
    known, vals = sparse
    if known.size == 0:
        return np.zeros(rows.size, dtype=np.float32)
    pos = np.clip(np.searchsorted(known, rows), 0, known.size - 1)
    return np.where(known[pos] == rows, vals[pos], np.float32(0)).astype(np.float32)
