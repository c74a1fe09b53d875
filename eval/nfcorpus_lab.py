"""NFCorpus candidate search over cached scores (how the retrieval defaults were chosen; issue 13).

Builds (once, cached under ``--cache``) the NFCorpus corpus + index with the shipped defaults through
``medrag.evaluation.retrieval.prepare_index``, then caches per query the score of EVERY chunk for each leg:
BM25 (the index's own bm25s scores) and each dense encoder (query vectors @ chunk vectors, exact). Every fusion /
aggregation / PRF candidate is then a few numpy operations over those matrices (seconds per candidate), scored
with nDCG@10 (linear gains, as pytrec_eval's ``ndcg_cut_10``, which BEIR uses) on NFCorpus train / dev / test.

    NFCORPUS_LAB_CACHE=/tmp/nfcorpus-lab python eval/nfcorpus_grid.py base   (builds the cache on first use)

The script only measures; the chosen settings live in ``FusionConfig`` / ``RetrievalEvalConfig`` and the
candidate log is ``eval/results/nfcorpus_candidates.md``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NFCORPUS = ROOT.parent / "shared" / "data" / "nfcorpus"
SPLITS = ("train", "dev", "test")


@dataclass
class Lab:
    """Everything cached for one corpus: chunk -> document map, queries per split, qrels, score matrices."""

    doc_ids: list[str]  # document id per document number
    starts: np.ndarray  # first chunk row of each document (chunks of a document are contiguous)
    row_doc: np.ndarray  # document number per chunk row
    qids: list[str]
    texts: list[str]
    split_of: dict[str, str]
    qrels: dict[str, dict[str, int]]
    legs: dict[str, np.ndarray]  # leg -> (queries, chunks) float32 scores

    def split_rows(self, split: str) -> np.ndarray:
        return np.array([i for i, q in enumerate(self.qids) if self.split_of[q] == split], dtype=np.int64)


def load_qrels(root: Path) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    qrels: dict[str, dict[str, int]] = {}
    split_of: dict[str, str] = {}
    for split in SPLITS:
        lines = (root / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        for line in lines:
            q, d, g = line.split("\t")
            if int(g) > 0:
                qrels.setdefault(q, {})[d] = int(g)
                split_of[q] = split
    return qrels, split_of


def ndcg10(ranked_docs: np.ndarray, qrel: Mapping[str, int], doc_ids: list[str]) -> float:
    gains = [qrel.get(doc_ids[d], 0) for d in ranked_docs[:10]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(qrel.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def evaluate(lab: Lab, doc_scores: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean nDCG@10 of document score matrix ``doc_scores`` (one row per query in ``rows``)."""
    top = np.argsort(-doc_scores, axis=1, kind="stable")[:, :10]
    per = np.array([ndcg10(top[i], lab.qrels[lab.qids[r]], lab.doc_ids) for i, r in enumerate(rows)])
    return float(per.mean()), per


# ------------------------------------------------------------------------------------------- caching


def build_lab(cache: Path, extra: Mapping[str, str]) -> Lab:
    qrels, split_of = load_qrels(NFCORPUS)
    queries = {json.loads(x)["_id"]: json.loads(x)["text"] for x in (NFCORPUS / "queries.jsonl").open()}
    qids = sorted(q for q in qrels if q in queries)
    texts = [queries[q] for q in qids]
    lab_dir = cache / "lab"
    if not (lab_dir / "bm25.npy").is_file() or not (lab_dir / "minilm.npy").is_file():
        _score_legs(cache, texts)
    docs = _corpus_doc_ids(cache)
    row_doc_ids = np.array(docs)
    change = np.r_[True, row_doc_ids[1:] != row_doc_ids[:-1]]
    starts = np.flatnonzero(change)
    doc_ids = [docs[s] for s in starts]
    if len(set(doc_ids)) != len(doc_ids):
        raise SystemExit("chunks of a document are not contiguous")
    legs = {name: np.load(lab_dir / f"{name}.npy") for name in ("bm25", "minilm", *extra)}
    return Lab(doc_ids, starts, np.cumsum(change) - 1, qids, texts, split_of, qrels, legs)


def _corpus_doc_ids(cache: Path) -> list[str]:
    """Chunk doc ids, read straight from the cached corpus's Arrow shards (any medrag version)."""
    import pyarrow.ipc as ipc

    (corpus_dir,) = sorted((cache / "eval-cache" / "corpora").glob("nfcorpus-*"))
    manifest = json.loads((corpus_dir / "manifest.json").read_text(encoding="utf-8"))
    docs: list[str] = []
    for shard in manifest["shards"]:
        with ipc.open_file(str(corpus_dir / shard["file"])) as reader:
            docs += reader.read_all().column("doc_id").to_pylist()
    return docs


def _score_legs(cache: Path, texts: list[str]) -> None:
    """Build the index with the shipped defaults and cache every chunk's BM25 and MiniLM score per query."""
    from medrag.config import IndexConfig
    from medrag.evaluation.data import load_beir_task
    from medrag.evaluation.retrieval import prepare_index
    from medrag.retrieve import load_index

    task = load_beir_task(NFCORPUS, split="test", name="nfcorpus")
    retriever = load_index(prepare_index(task, cache / "eval-cache", IndexConfig(), progress=True))
    _cached(cache / "lab" / "bm25.npy", lambda: np.stack([retriever.bm25.scores(t) for t in texts]))
    dense = retriever._dense
    vectors = np.asarray(dense.index.vectors, dtype=np.float32)
    _cached(cache / "lab" / "minilm.npy", lambda: dense.encode(texts) @ vectors.T)


def score_extra_leg(cache: Path, name: str, leg_dir: Path, model: str) -> None:
    """Cache ``lab/<name>.npy``: every query's similarity to every chunk for an extra dense leg whose chunk
    vectors ``leg_dir/vectors.npy`` were encoded by ``model`` (a sentence-transformers folder)."""
    from medrag.config import EncoderConfig
    from medrag.index.encoder import load_encoder

    qrels, split_of = load_qrels(NFCORPUS)
    queries = {json.loads(x)["_id"]: json.loads(x)["text"] for x in (NFCORPUS / "queries.jsonl").open()}
    texts = [queries[q] for q in sorted(q for q in qrels if q in queries)]
    vectors = np.load(leg_dir / "vectors.npy")
    encoder = load_encoder(EncoderConfig(model=model, max_seq_length=256, backend="torch"))
    _cached(cache / "lab" / f"{name}.npy", lambda: encoder.encode_queries(texts) @ vectors.T)


def _cached(path: Path, make: Callable[[], np.ndarray]) -> np.ndarray:
    if path.is_file():
        return np.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(make(), dtype=np.float32)
    np.save(path, arr)
    return arr


# ------------------------------------------------------------------------------------------ candidates


def norm(x: np.ndarray, method: str) -> np.ndarray:
    if method == "zscore":
        sd = x.std()
        return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)
    if method == "minmax":
        lo, hi = x.min(), x.max()
        return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x


def top_rows(scores: np.ndarray, k: int, positive: bool = False) -> np.ndarray:
    k = min(k, scores.size)
    part = np.argpartition(-scores, k - 1)[:k]
    if positive:
        part = part[scores[part] > 0]
    return part


def chunk_fusion(lab: Lab, rows: np.ndarray, legs: dict[str, float], *, depth: int = 50, method: str = "zscore",
                 agg: str = "max", fetch: int = 300, decay: float = 0.0, missing: np.ndarray | None = None,
                 penalty: float = 0.0, scores: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The shipped scheme generalised: pool = union of each leg's top ``depth`` chunks; each leg's scores over
    the pool normalised and summed with weights; the top ``fetch`` fused chunks aggregated per document."""
    n_docs = len(lab.doc_ids)
    out = np.full((rows.size, n_docs), -1e9, dtype=np.float64)
    mats = {name: (scores or {}).get(name, lab.legs[name]) for name in legs}
    for i, r in enumerate(rows):
        pool = np.unique(np.concatenate([top_rows(m[r], depth, positive=(name == "bm25"))
                                         for name, m in mats.items()]))
        fused = np.zeros(pool.size)
        for name, w in legs.items():
            if w:
                fused += w * norm(mats[name][r, pool].astype(np.float64), method)
        if penalty and missing is not None:
            fused -= penalty * missing[r, pool]
        order = np.argsort(-fused, kind="stable")[:fetch]
        aggregate_into(out[i], lab.row_doc[pool[order]], fused[order], agg, decay)
    return out


def aggregate_into(target: np.ndarray, docs: np.ndarray, scores: np.ndarray, agg: str, decay: float) -> None:
    """Ranked chunk scores -> document scores: ``max``, or max + decay * (sum of the doc's other chunks' scores
    above the pool minimum) (``maxsum``)."""
    seen: dict[int, float] = {}
    extra: dict[int, float] = {}
    floor = scores.min() if scores.size else 0.0
    for d, s in zip(docs.tolist(), scores.tolist(), strict=True):
        if d not in seen:
            seen[d] = s
        elif agg == "maxsum":
            extra[d] = extra.get(d, 0.0) + (s - floor)
    for d, s in seen.items():
        target[d] = s + decay * extra.get(d, 0.0)


def doc_fusion(lab: Lab, rows: np.ndarray, legs: dict[str, float], *, depth: int = 100, method: str = "zscore",
               rrf_k: int = 0) -> np.ndarray:
    """Document-level fusion: each leg's document score = its best chunk; pool = union of each leg's top
    ``depth`` documents; normalised weighted sum (or weighted RRF when ``rrf_k``)."""
    n_docs = len(lab.doc_ids)
    per_leg = {name: np.maximum.reduceat(lab.legs[name][rows], lab.starts, axis=1) for name in legs}
    out = np.full((rows.size, n_docs), -1e9, dtype=np.float64)
    for i in range(rows.size):
        pool = np.unique(np.concatenate([top_rows(m[i], depth, positive=(name == "bm25"))
                                         for name, m in per_leg.items()]))
        fused = np.zeros(pool.size)
        for name, w in legs.items():
            vals = per_leg[name][i, pool].astype(np.float64)
            if rrf_k:
                ranks = np.empty(pool.size)
                ranks[np.argsort(-vals, kind="stable")] = np.arange(1, pool.size + 1)
                fused += w / (rrf_k + ranks)
            else:
                fused += w * norm(vals, method)
        out[i, pool] = fused
    return out


def leg_only(lab: Lab, rows: np.ndarray, leg: str) -> np.ndarray:
    return np.maximum.reduceat(lab.legs[leg][rows], lab.starts, axis=1).astype(np.float64)


# ---------------------------------------------------------------------------------- pseudo-relevance feedback


def bm25_matrix(index_dir: Path) -> object:
    """The index's BM25 (rows x terms) contribution matrix (scipy CSR), from bm25s' CSC arrays."""
    import scipy.sparse as sp

    from medrag.config import BM25Config
    from medrag.index.bm25 import BM25Index

    bm25 = BM25Index.load(index_dir / "bm25", BM25Config())
    s = bm25.model.scores
    mat = sp.csc_matrix((np.asarray(s["data"]), np.asarray(s["indices"]), np.asarray(s["indptr"])),
                        shape=(bm25.num_docs, len(bm25.vocab)))
    return mat.tocsr(), bm25


def rm3_scores(mat: object, bm25: object, texts: list[str], base: np.ndarray, *, fb_docs: int = 10,
               fb_terms: int = 10, weight: float = 0.5) -> np.ndarray:
    """BM25 PRF (RM3-like on BM25 contributions): the ``fb_terms`` terms carrying most BM25 weight in the
    top ``fb_docs`` chunks (each chunk's row L1-normalised) are added with total weight ``weight``."""
    csc = mat.tocsc()  # type: ignore[attr-defined]
    out = np.empty_like(base)
    for i, text in enumerate(texts):
        top = top_rows(base[i], fb_docs, positive=True)
        if top.size == 0:
            out[i] = base[i]
            continue
        rows = mat[top]  # type: ignore[index]
        norms = np.asarray(rows.sum(axis=1)).ravel()
        norms[norms == 0] = 1
        tw = np.asarray(rows.multiply(1 / norms[:, None]).sum(axis=0)).ravel()
        own = set(bm25.term_ids(text).tolist())  # type: ignore[attr-defined]
        tw[list(own)] = 0
        terms = np.argsort(-tw)[:fb_terms]
        terms = terms[tw[terms] > 0]
        if terms.size == 0:
            out[i] = base[i]
            continue
        w = tw[terms] / tw[terms].sum()
        exp = np.asarray(csc[:, terms] @ w).ravel()
        # original query scores are on BM25's scale; rescale the expansion to the top score's scale
        scale = base[i].max() / exp.max() if exp.max() > 0 else 0.0
        out[i] = (1 - weight) * base[i] + weight * exp * scale
    return out


def rocchio_scores(scores: np.ndarray, vectors: np.ndarray, *, fb_docs: int = 5, beta: float = 0.5) -> np.ndarray:
    """Dense PRF: q' = q + beta * mean(top ``fb_docs`` chunk vectors); scores of q' (unnormalised)."""
    out = np.empty_like(scores)
    for i in range(scores.shape[0]):
        top = top_rows(scores[i], fb_docs)
        centroid = vectors[top].mean(axis=0)
        out[i] = scores[i] + beta * (vectors @ centroid)
    return out


def rare_missing(bm25: object, texts: list[str], n_rows: int, rare_df: float) -> np.ndarray:
    """Per query and chunk: the share of the query's rare-term idf mass (terms in at most ``rare_df`` of the
    chunks) that the chunk lacks (0 = has every rare term, or the query has none)."""
    s = bm25.model.scores  # type: ignore[attr-defined]
    indptr, indices = np.asarray(s["indptr"]), s["indices"]
    out = np.zeros((len(texts), n_rows), dtype=np.float32)
    for i, text in enumerate(texts):
        terms = np.unique(bm25.term_ids(text))  # type: ignore[attr-defined]
        df = indptr[terms + 1] - indptr[terms]
        rare = terms[(df > 0) & (df <= rare_df * n_rows)]
        if rare.size == 0:
            continue
        dfr = indptr[rare + 1] - indptr[rare]
        idf = np.log(1 + (n_rows - dfr + 0.5) / (dfr + 0.5))
        have = np.zeros(n_rows, dtype=np.float32)
        for t, w in zip(rare.tolist(), idf.tolist(), strict=True):
            have[np.asarray(indices[indptr[t]:indptr[t + 1]])] += w
        out[i] = 1 - have / idf.sum()
    return out
