"""BM25 variants over a cached corpus without rebuilding an index (issue 13: k1/b grid, title/section weighting).

The chunks' fields are tokenized once with the shipped ``BiomedicalTokenizer``; ``weights(k1, b, tw, sw)`` gives
the (rows x terms) BM25 weight matrix with the title field's term counts multiplied by ``tw`` and the section's
by ``sw`` (the "repeat the title" form of field weighting; 1, 1 = the shipped index), and ``scores(Q, W)`` the
(queries x rows) scores. With the defaults it reproduces the index's own scores (max |diff| 2e-6).
"""
# ruff: noqa: E501
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.ipc as ipc
import scipy.sparse as sp

from medrag.config import BM25Config
from medrag.index.bm25_formulas import idf as idf_fn
from medrag.index.tokenizer import BiomedicalTokenizer

FIELDS = ("title", "section", "text")


class BM25Lab:
    def __init__(self, corpus_dir: Path) -> None:
        manifest = json.loads((corpus_dir / "manifest.json").read_text(encoding="utf-8"))
        cols: dict[str, list[str]] = {c: [] for c in FIELDS}
        for shard in manifest["shards"]:
            with ipc.open_file(str(corpus_dir / shard["file"])) as reader:
                table = reader.read_all()
                for c in FIELDS:
                    cols[c] += [x or "" for x in table.column(c).to_pylist()]
        self.n = len(cols["text"])
        self.tok = BiomedicalTokenizer(BM25Config())
        ids = self.tok.term_ids()
        batches = {c: ids.batch(cols[c]) for c in FIELDS}
        self.vocab = ids.term_to_id
        self.V = len(self.vocab)
        self.tf = {c: self._tf(*batches[c]) for c in FIELDS}

    def _tf(self, flat: np.ndarray, lengths: np.ndarray) -> sp.csr_matrix:
        rows = np.repeat(np.arange(self.n), lengths)
        return sp.csr_matrix((np.ones(len(flat), np.float32), (rows, flat)), shape=(self.n, self.V))

    def term_ids(self, text: str) -> np.ndarray:
        return np.array(sorted({self.vocab[t] for t in self.tok.analyze(text) if t in self.vocab}), dtype=np.int64)

    def query_matrix(self, texts: list[str]) -> sp.csr_matrix:
        r, c, v = [], [], []
        for i, t in enumerate(texts):
            counts: dict[int, int] = {}
            for term in self.tok.analyze(t):
                j = self.vocab.get(term)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            for j, k in counts.items():
                r.append(i); c.append(j); v.append(k)  # noqa: E702
        return sp.csr_matrix((np.array(v, np.float32), (r, c)), shape=(len(texts), self.V))

    def weights(self, k1: float = 1.5, b: float = 0.75, tw: float = 1.0, sw: float = 1.0) -> sp.csr_matrix:
        """Lucene BM25 weight of every (row, term) with title x ``tw`` and section x ``sw``."""
        counts = tw * self.tf["title"] + sw * self.tf["section"] + self.tf["text"]
        tf = counts.tocoo()
        dl = np.asarray(counts.sum(axis=1)).ravel()
        idf = idf_fn(np.bincount(tf.col, minlength=self.V), self.n, "lucene").astype(np.float64)
        norm = k1 * ((1 - b) + b * dl[tf.row] / dl.mean())
        w = tf.data / (norm + tf.data)
        return sp.csr_matrix(((idf[tf.col] * w).astype(np.float32), (tf.row, tf.col)), shape=(self.n, self.V))


def scores(q: sp.csr_matrix, w: sp.csr_matrix) -> np.ndarray:
    return np.asarray((q @ w.T).todense(), dtype=np.float32)
