"""Growth curves: BM25 and dense (FAISS) build time, index size, peak memory and query latency vs corpus size.

For each size (synthetic medical-like chunks from ``bench_retrieval_data``; default 10k / 50k / 200k / 1M / 2M),
every measurement runs in its own child process (so its peak RSS is its own) under ``--timeout`` seconds:

- ``bm25``: medrag's single-shot BM25 build, index bytes, peak anonymous RSS, load + query latency (one query
  per call, p50 / mean over the query set);
- ``bm25_parts``: the out-of-core build (parts of ``--part-rows`` merged), same measurements — the alternative
  measured in the same run: equal index, bounded build memory;
- ``engine:local`` / ``engine:ray``: ``build_index`` (BM25 only, in parts) through each engine, Ray on a local
  instance with this machine's cores (only with ``--only``);
- ``dense:<kind>``: FAISS indexes on synthetic 384-d *clustered* unit vectors (encoding millions of chunks
  with MiniLM is not feasible on 2 shared CPU cores; encoding throughput is measured separately in
  ``retrieval_bench.md``): build (train on a seeded 100k sample + add) time, bytes, peak RSS, latency for one
  query per call and per query in a batch of 200, and recall@10 against exact search (``Flat``) on the same
  vectors and queries. Flat (fp32), SQfp16 (fp16), IVF-PQ (m=64), a 4-shard IVF-PQ, HNSW32, OPQ64+IVF-PQ, and
  IVF-PQ whose 100 candidates are re-scored exactly from the memory-mapped vectors (``rerank=10``).

Writes ``scale.json`` (merged across runs: ``--only`` re-measures some rows), ``scale.md`` and ``scale.png``
under ``eval/results/`` (the report and the 24M / 54M extrapolation are in ``bench_scale_report.py``).

    python eval/bench_scale.py [--sizes 10000 50000 200000 1000000 2000000] [--only bm25 dense:Flat] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retrieval import AnonPeak, dir_mb, peak_rss_mb  # noqa: E402
from bench_retrieval_data import DIM, WORK, make_corpus, make_queries  # noqa: E402

RESULTS = ROOT / "eval" / "results"
K = 10
N_QUERIES = 200
PART_ROWS = 262_144


def nlist_for(n: int) -> int:
    """IVF lists ≈ 4·sqrt(n), a power of two (the usual rule of thumb)."""
    return int(2 ** round(np.log2(4 * np.sqrt(n))))


def factories(n: int) -> dict[str, tuple[str, int, int, int]]:
    """Measured dense index kinds: name -> (factory string, shards, training sample, exact re-rank factor).

    ``PQ64np``: 64 one-byte codes without faiss' polysemous training (which medrag never uses at search time
    and which made PQ training ~8x slower here). OPQ's rotation is trained on 20k vectors (OPQ training is
    minutes per 10k vectors on these cores), so it is measured at few sizes.
    """
    ivf = nlist_for(n)
    return {
        "Flat": ("Flat", 1, 0, 0),
        "SQfp16": ("SQfp16", 1, 0, 0),
        "IVF-PQ64": (f"IVF{ivf},PQ64np", 1, 100_000, 0),
        "IVF-PQ64x4shards": (f"IVF{ivf},PQ64np", 4, 100_000, 0),
        "HNSW32": ("HNSW32", 1, 0, 0),
        "OPQ64-IVF-PQ64": (f"OPQ64,IVF{ivf},PQ64np", 1, 20_000, 0),
        "IVF-PQ64+rerank10": (f"IVF{ivf},PQ64np", 1, 100_000, 10),
    }


# ------------------------------------------------------------------------------------- synthetic vectors


def clustered_vectors(n: int, centers: int = 4096, seed: int = 5) -> Path:
    """``n`` unit vectors around ``centers`` random directions (spread like sentence embeddings, which
    cluster by topic; i.i.d. Gaussian vectors have no neighbourhood structure at all). Cached under WORK."""
    path = WORK / f"clustered-{n}.npy"
    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal((centers, DIM), dtype=np.float32)
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    tmp = WORK / f".clustered-{n}.tmp.npy"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = mean[rng.integers(0, centers, size=m)] + 0.08 * rng.standard_normal((m, DIM), dtype=np.float32)
        out[start: start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out
    os.replace(tmp, path)
    return path


def query_vectors(vectors: np.ndarray, count: int = N_QUERIES, seed: int = 17) -> np.ndarray:
    """Queries near (not at) corpus vectors: a random row plus noise, normalised."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(vectors.shape[0], size=count, replace=False))
    q = np.asarray(vectors[rows], dtype=np.float32) + 0.05 * rng.standard_normal((count, DIM), dtype=np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact top-10 rows by inner product (block-wise over the memmap); cached per size."""
    n = vectors.shape[0]
    path = WORK / f"clustered-{n}-truth.npy"
    if path.is_file():
        return np.load(path)
    best_s = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_r = np.zeros((len(queries), K), dtype=np.int64)
    for start in range(0, n, 200_000):
        block = np.asarray(vectors[start: start + 200_000], dtype=np.float32)
        scores = queries @ block.T
        s = np.concatenate([best_s, scores], axis=1)
        r = np.concatenate([best_r, np.arange(start, start + block.shape[0])[None, :].repeat(len(queries), 0)],
                           axis=1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :K]
        best_s, best_r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
    np.save(path, best_r)
    return best_r


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / k (recall@k of an approximate index against exact search)."""
    return float(np.mean([len(set(f[f >= 0].tolist()) & set(t.tolist())) / truth.shape[1]
                          for f, t in zip(found, truth, strict=True)]))


# ------------------------------------------------------------------------------------------ children


def _latency_ms(fn: Any, items: list[Any]) -> dict[str, float]:
    fn(items[0])  # warm-up
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50_ms": float(np.percentile(times, 50)), "mean_ms": float(np.mean(times)),
            "p95_ms": float(np.percentile(times, 95))}


def child_bm25(n: int, parts: bool) -> dict[str, Any]:
    from medrag.config import BM25Config
    from medrag.index.bm25 import BM25Index, build_bm25
    from medrag.index.bm25_parts import build_bm25_in_parts
    from medrag.index.build import row_batches
    from medrag.ingest.store import Corpus

    corpus = Corpus.open(make_corpus(n))
    out = WORK / f"scale-bm25{'-parts' if parts else ''}-{n}"
    config = BM25Config()
    texts = row_batches(corpus, config.fields, 0, corpus.num_rows)
    sampler = AnonPeak()
    start = time.perf_counter()
    if parts:
        stats = build_bm25_in_parts(texts, out, config, part_rows=PART_ROWS)
    else:
        stats = build_bm25(texts, out, config)
    build_s = time.perf_counter() - start
    anon = sampler.stop()
    start = time.perf_counter()
    index = BM25Index.load(out, config)
    load_s = time.perf_counter() - start
    latency = _latency_ms(lambda q: index.search(q, K), make_queries(N_QUERIES))
    return {"build_s": build_s, "peak_anon_mb": anon, "peak_rss_mb": peak_rss_mb(), "bytes": dir_mb(out) * 2**20,
            "load_s": load_s, **latency, "vocabulary": stats["vocabulary"], "nonzeros": stats["nonzeros"],
            "parts": stats.get("parts", 1), "merge_s": stats.get("merge_seconds")}


def child_engine(n: int, engine: str) -> dict[str, Any]:
    """``build_index`` (BM25 only) through the local engine or Ray (local instance on this machine's cores),
    both in parts of ``PART_ROWS // 4`` rows so the Ray build has parts to spread."""
    from medrag.config import IndexConfig, ScaleConfig
    from medrag.index import build_index

    out = WORK / f"scale-index-{engine}-{n}"
    scale = ScaleConfig(engine=engine, num_cpus=os.cpu_count() if engine == "ray" else None,
                        bm25_part_rows=PART_ROWS // 4)
    corpus = make_corpus(n)
    start = time.perf_counter()
    build_index([corpus], out, IndexConfig(dense=False), progress=False, scale=scale)
    build_s = time.perf_counter() - start
    manifest = json.loads((out / "manifest.json").read_text())
    return {"build_s": build_s, "bm25_s": manifest["bm25"]["stats"]["build_seconds"],
            "parts": manifest["bm25"]["stats"]["parts"], "peak_rss_mb": peak_rss_mb(),
            "bytes": dir_mb(out) * 2**20}


def child_dense(n: int, kind: str) -> dict[str, Any]:
    import faiss

    from medrag.config import FaissConfig
    from medrag.index.dense import DenseIndex
    from medrag.index.faiss_files import load_dense_faiss, write_faiss

    factory, shards, train, rerank = factories(n)[kind]
    vectors = np.load(clustered_vectors(n), mmap_mode="r")
    queries = query_vectors(vectors)
    truth = exact_neighbours(vectors, queries)
    out = WORK / f"scale-dense-{kind}-{n}"
    (out / "dense").mkdir(parents=True, exist_ok=True)
    config = FaissConfig(factory=factory, shards=shards, nprobe=32, ef_search=128, train_sample=max(train, 1),
                         rerank=rerank)
    sampler = AnonPeak()
    start = time.perf_counter()
    record = write_faiss(vectors, config, "ip", out)
    build_s = time.perf_counter() - start
    anon = sampler.stop()
    index = DenseIndex(load_dense_faiss(out, record, config), vectors, "ip", config)
    rows, _ = index.search(queries, K)
    start = time.perf_counter()
    index.search(queries, K)
    batch_ms = (time.perf_counter() - start) * 1e3 / len(queries)
    latency = _latency_ms(lambda q: index.search(q[None, :], K), list(queries[:100]))
    found = np.full((len(queries), K), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        found[i, : r.size] = r
    for f in out.glob("dense/faiss*.index"):
        f.unlink()
    return {"factory": factory, "shards": shards, "rerank": rerank, "build_s": build_s, "peak_anon_mb": anon,
            "peak_rss_mb": peak_rss_mb(), "bytes": record["bytes"], "bytes_per_vector": record["bytes_per_vector"],
            "trained_on": record["trained_on"], "batch_ms_per_query": batch_ms, **latency,
            "recall_at_10": recall_at_k(found, truth), "threads": faiss.omp_get_max_threads()}


def child_real() -> dict[str, Any]:
    """Recall@10 vs exact on *real* MiniLM vectors: the embedded guideline index (``medrag index build``) and
    its 169 real questions (``eval/data/guideline_queries.jsonl``) — small, but real embedding geometry."""
    import medrag
    from medrag.config import FaissConfig
    from medrag.index.dense import DenseIndex, exact_search
    from medrag.index.faiss_files import load_dense_faiss, write_faiss

    index_dir = ROOT / "indexes" / "default"
    retriever = medrag.load_index(index_dir, mode="dense")
    lines = (ROOT / "eval" / "data" / "guideline_queries.jsonl").read_text().splitlines()
    queries = retriever._dense.encode([json.loads(line)["query"] for line in lines])
    vectors = np.load(index_dir / "dense" / "vectors.npy")
    n = vectors.shape[0]
    truth = np.stack([exact_search(vectors, np.arange(n), q, K, "ip")[0] for q in queries])
    kinds = {"IVF32,PQ64np": 0, "IVF32,PQ32np": 0, "IVF32,PQ64np+rerank10": 10, "SQfp16": 0, "HNSW32": 0}
    out: dict[str, Any] = {"rows": n, "queries": len(queries)}
    for name, rerank in kinds.items():
        config = FaissConfig(factory=name.split("+")[0], nprobe=8, rerank=rerank)
        work = WORK / "scale-real" / name.replace(",", "_").replace("+", "_")
        (work / "dense").mkdir(parents=True, exist_ok=True)
        record = write_faiss(vectors, config, "ip", work)
        rows, _ = DenseIndex(load_dense_faiss(work, record, config), vectors, "ip", config).search(queries, K)
        found = np.stack([np.pad(r, (0, K - r.size), constant_values=-1) for r in rows])
        out[name] = {"recall_at_10": recall_at_k(found, truth), "bytes_per_vector": record["bytes_per_vector"]}
    return out


# ------------------------------------------------------------------------------------------- driver


def run_child(kind: str, n: int, timeout: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--n", str(n)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout}s", "wall_s": timeout}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000, 1_000_000, 2_000_000])
    parser.add_argument("--only", nargs="+", default=None,
                        help="kinds to (re)measure: bm25 bm25_parts dense:NAME engine:local engine:ray")
    parser.add_argument("--skip", nargs="+", default=[], help="'KIND@N' pairs not to run (e.g. dense:HNSW32@2000000)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per measurement")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--real", action="store_true",
                        help="only the real-embedding recall check on indexes/default (build it first)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child.startswith("dense:"):
            result = child_dense(args.n, args.child.split(":", 1)[1])
        elif args.child == "real":
            result = child_real()
        elif args.child.startswith("engine:"):
            result = child_engine(args.n, args.child.split(":", 1)[1])
        else:
            result = child_bm25(args.n, parts=args.child == "bm25_parts")
        print(json.dumps(result))
        return
    from bench_scale_report import load_results, write_report

    results = load_results(RESULTS / "scale.json")
    if args.real:
        results["_real"] = run_child("real", 0, args.timeout)
        print(json.dumps(results["_real"]), flush=True)
        (RESULTS / "scale.json").write_text(json.dumps(results, indent=1))
    elif not args.report_only:
        kinds = args.only or ["bm25", "bm25_parts", *(f"dense:{k}" for k in factories(10_000))]
        for n in args.sizes:
            make_corpus(n) if any(k.startswith("bm25") for k in kinds) else None
            for kind in kinds:
                if f"{kind}@{n}" in args.skip:
                    continue
                result = run_child(kind, n, args.timeout)
                result["load_avg"] = os.getloadavg()[0]
                results.setdefault(kind, {})[str(n)] = result
                print(f"{kind:>24} {n:>9,}: {json.dumps(result)[:220]}", flush=True)
                (RESULTS / "scale.json").write_text(json.dumps(results, indent=1))
    write_report(results, RESULTS)


if __name__ == "__main__":
    main()
