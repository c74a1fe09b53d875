"""Retrieval benchmark: medrag's index against the raw libraries, same corpus, same run.

For each size (synthetic medical-like chunks; default 10k / 100k / 1M):

- BM25 build time, peak RSS and queries/s: medrag (bm25s format, streaming build, biomedical tokenizer) vs raw
  bm25s (``bm25s.tokenize`` + ``BM25.index`` + ``retrieve``) vs rank-bm25 ``BM25Okapi`` (up to
  ``--rank-bm25-max`` chunks);
- FAISS (Flat, inner product) on synthetic 384-d unit vectors — encoding 1M chunks with MiniLM is not feasible
  on 2 shared CPU cores: medrag ``DenseIndex`` search vs raw ``faiss.IndexFlatIP`` search;
- ``medrag.load_index`` time of the whole index (BM25 + vectors + FAISS + corpus), RSS right after loading.

Once: dense encoding passages/s of medrag's encoders (torch, ONNX int8) vs plain ``SentenceTransformer.encode``
on the same sample of real guideline chunks; and the real corpora (guidelines, PubMedQA) end to end.

Every measurement runs in its own child process (so peak RSS is that measurement's). Writes
``retrieval_bench.md``, ``retrieval_bench.json`` and ``retrieval_bench.png`` under ``--out``.

    python eval/bench_retrieval.py [--sizes 10000 100000 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retrieval_data import DIM, WORK, make_corpus, make_queries, make_vectors  # noqa: E402
from bench_retrieval_report import plot, report  # noqa: E402

K = 10

# ------------------------------------------------------------------------------------------ children


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """Samples the process's anonymous RSS (``RssAnon``: memory it allocated, not file pages it mapped)."""

    def __init__(self, interval: float = 0.05) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, anon_rss_mb())
            self._stop.wait(interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, anon_rss_mb())


def anon_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20


def texts_of(corpus_dir: Path) -> list[str]:
    from medrag.config import BM25Config
    from medrag.index.build import passage_texts
    from medrag.ingest.store import Corpus

    fields = BM25Config().fields
    out: list[str] = []
    for batch in Corpus.open(corpus_dir).iter_batches(columns=list(fields)):
        out.extend(passage_texts(batch, fields))
    return out


def faiss_qps(index: Any, n_queries: int) -> tuple[float, float]:
    """(q/s for one batch of ``n_queries`` seeded unit vectors, q/s for 50 of them one per call).

    The same measurement for medrag's loaded FAISS index and for raw faiss, so the two rows compare."""
    qvecs = np.random.default_rng(3).standard_normal((n_queries, DIM), dtype=np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    start = time.perf_counter()
    index.search(qvecs, K)
    batch_qps = n_queries / (time.perf_counter() - start)
    start = time.perf_counter()
    for v in qvecs[:50]:
        index.search(v[None, :], K)
    return batch_qps, 50 / (time.perf_counter() - start)


def child_medrag_build(n: int, queries: list[str]) -> dict[str, Any]:
    import bm25s  # noqa: F401 - imported before timing, as in the bm25s measurement

    from medrag.config import IndexConfig
    from medrag.index import build_index

    out = WORK / f"index-{n}"
    corpus, vectors = make_corpus(n), make_vectors(n)
    sampler = AnonPeak()
    start = time.perf_counter()
    build_index([corpus], out, IndexConfig(dense=False), progress=False)
    bm25_only_s = time.perf_counter() - start
    bm25_peak = peak_rss_mb()  # the BM25 build alone (ru_maxrss only grows: read it before the dense part)
    bm25_anon = sampler.stop()
    sampler = AnonPeak()
    start = time.perf_counter()
    build_index([corpus], out, IndexConfig(), progress=False, vectors=vectors)
    total = time.perf_counter() - start
    full_anon = sampler.stop()
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "bm25_only_build_s": bm25_only_s,
        "bm25_peak_rss_mb": bm25_peak,
        "bm25_peak_anon_mb": bm25_anon,
        "full_peak_anon_mb": full_anon,
        "build_s": total,
        "bm25_build_s": manifest["bm25"]["stats"]["build_seconds"],
        "faiss_build_s": manifest["dense"]["build_seconds"]["faiss"],
        "vectors_import_s": manifest["dense"]["build_seconds"]["vectors"],
        "peak_rss_mb": peak_rss_mb(),
        "index_mb": dir_mb(out),
        "bm25_mb": dir_mb(out / "bm25"),
        "corpus_mb": dir_mb(make_corpus(n)),
        "vocabulary": manifest["bm25"]["stats"]["vocabulary"],
    }


def child_medrag_search(n: int, queries: list[str]) -> dict[str, Any]:
    start = time.perf_counter()
    import bm25s  # noqa: F401
    import faiss  # noqa: F401

    import medrag
    from medrag.retrieve import hybrid  # noqa: F401

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    retriever = medrag.load_index(WORK / f"index-{n}")
    dense = retriever._dense.index  # forces FAISS + vectors to load (memory-mapped)
    load_s = time.perf_counter() - start
    rss_after_load = current_rss_mb()
    bm25 = retriever.with_options(mode="bm25")
    bm25.search_rows(queries[:5], K)  # warm-up
    start = time.perf_counter()
    for q in queries:
        bm25.search_rows([q], K)
    bm25_qps = len(queries) / (time.perf_counter() - start)
    dense_batch_qps, dense_single_qps = faiss_qps(dense, len(queries))
    fused = retriever.with_options(mode="hybrid")
    fused._dense.encode(queries[:50])  # encoder load + query encoding are not part of fusion cost
    start = time.perf_counter()
    for q in queries[:50]:
        fused.search_rows([q], K)
    hybrid_qps = 50 / (time.perf_counter() - start)
    return {"load_s": load_s, "import_s": import_s, "rss_after_load_mb": rss_after_load, "bm25_qps": bm25_qps,
            "dense_batch_qps": dense_batch_qps, "dense_single_qps": dense_single_qps,
            "hybrid_qps_cached_query_vectors": hybrid_qps, "peak_rss_mb": peak_rss_mb()}


def child_bm25s(n: int, queries: list[str]) -> dict[str, Any]:
    import bm25s
    import Stemmer

    texts = texts_of(make_corpus(n))
    stemmer = Stemmer.Stemmer("english")
    rss_texts = current_rss_mb()
    sampler = AnonPeak()
    start = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    model = bm25s.BM25()
    model.index(tokens, show_progress=False)
    build_s = time.perf_counter() - start
    anon = sampler.stop()
    del texts
    out = WORK / f"bm25s-{n}"
    model.save(str(out), show_progress=False)
    start = time.perf_counter()
    loaded = bm25s.BM25.load(str(out), mmap=True)
    load_s = time.perf_counter() - start
    q_tokens = bm25s.tokenize(queries[:5], stopwords="en", stemmer=stemmer, show_progress=False)
    loaded.retrieve(q_tokens, k=K, show_progress=False)  # warm-up
    start = time.perf_counter()
    for q in queries:  # one query at a time, like medrag's loop
        loaded.retrieve(bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False),
                        k=K, show_progress=False)
    qps = len(queries) / (time.perf_counter() - start)
    start = time.perf_counter()
    loaded.retrieve(bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False), k=K,
                    show_progress=False)
    batch_qps = len(queries) / (time.perf_counter() - start)
    return {"build_s": build_s, "load_s": load_s, "qps": qps, "batch_qps": batch_qps,
            "peak_rss_mb": peak_rss_mb(), "peak_anon_mb": anon, "rss_texts_mb": rss_texts, "index_mb": dir_mb(out)}


def child_rank_bm25(n: int, queries: list[str]) -> dict[str, Any]:
    import bm25s
    import Stemmer
    from rank_bm25 import BM25Okapi

    texts = texts_of(make_corpus(n))
    stemmer = Stemmer.Stemmer("english")
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
    del texts
    start = time.perf_counter()
    model = BM25Okapi(tokens)
    build_s = time.perf_counter() - start
    sample = queries[: max(5, min(len(queries), 2_000_000 // n))]
    q_tokens = bm25s.tokenize(sample, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
    start = time.perf_counter()
    for q in q_tokens:
        scores = model.get_scores(q)
        np.argpartition(-scores, K)[:K]
    qps = len(sample) / (time.perf_counter() - start)
    return {"build_s": build_s, "qps": qps, "queries_timed": len(sample), "peak_rss_mb": peak_rss_mb()}


def child_faiss_raw(n: int, queries: list[str]) -> dict[str, Any]:
    import faiss

    vectors = np.load(make_vectors(n))
    start = time.perf_counter()
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    build_s = time.perf_counter() - start
    path = WORK / f"faiss-raw-{n}.index"
    faiss.write_index(index, str(path))
    del index, vectors
    start = time.perf_counter()
    index = faiss.read_index(str(path))
    load_s = time.perf_counter() - start
    batch_qps, single_qps = faiss_qps(index, len(queries))
    path.unlink()
    return {"build_s": build_s, "load_s": load_s, "batch_qps": batch_qps, "single_qps": single_qps,
            "peak_rss_mb": peak_rss_mb()}


def child_encode(sample: int, queries: list[str]) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    from medrag.config import EncoderConfig
    from medrag.index.encoder import OnnxEncoder, SentenceTransformerEncoder, default_model_path
    from medrag.ingest.store import Corpus

    corpus = Corpus.open(ROOT / "corpora" / "guidelines")
    rows = np.random.default_rng(0).choice(corpus.num_rows, size=min(sample, corpus.num_rows), replace=False)
    texts = [f"{c.title}\n{c.text}" for c in corpus.take(sorted(rows.tolist()))]
    results: dict[str, Any] = {"passages": len(texts)}
    plain = SentenceTransformer(default_model_path(), device="cpu")
    plain.max_seq_length = 256
    plain.encode(texts[:16], batch_size=64)
    start = time.perf_counter()
    reference = plain.encode(texts, batch_size=64, normalize_embeddings=True)
    results["plain_sentence_transformers_pps"] = len(texts) / (time.perf_counter() - start)
    for name, encoder in (("medrag_torch", SentenceTransformerEncoder(EncoderConfig())),
                          ("medrag_onnx_int8", OnnxEncoder(EncoderConfig(backend="onnx")))):
        encoder.encode_passages(texts[:16])
        start = time.perf_counter()
        vectors = encoder.encode_passages(texts)
        results[f"{name}_pps"] = len(texts) / (time.perf_counter() - start)
        results[f"{name}_min_cosine_vs_plain"] = float((vectors * reference).sum(axis=1).min())
    return results


def child_real(name: str, queries: list[str]) -> dict[str, Any]:
    import medrag

    path = {"guidelines": ROOT / "indexes" / "default",
            "pubmedqa": ROOT / "eval" / ".cache" / "quality" / "pubmedqa-index"}[name]
    qfile = ROOT / "eval" / "data" / "guideline_queries.jsonl"
    if name == "guidelines":
        real_queries = [json.loads(line)["query"] for line in open(qfile)]
    else:
        data = json.loads((ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json").read_text())
        real_queries = [item["QUESTION"] for item in data.values()]
    start = time.perf_counter()
    r = medrag.load_index(path)
    r._dense.index  # noqa: B018 - load the dense part too
    load_s = time.perf_counter() - start
    manifest = r.manifest
    out: dict[str, Any] = {"rows": manifest["rows"], "load_s": load_s, "index_mb": dir_mb(path),
                           "bm25_build_s": manifest["bm25"]["stats"].get("build_seconds"),
                           "dense_build_s": manifest["dense"].get("build_seconds")}
    for mode in ("bm25", "dense", "hybrid"):
        rr = r.with_options(mode=mode)
        rr.search(real_queries[0], k=K)
        if rr._dense is not None:
            rr._dense._cache.clear()
        start = time.perf_counter()
        for q in real_queries:
            rr.search(q, k=K)
        out[f"{mode}_qps_with_encoding"] = len(real_queries) / (time.perf_counter() - start)
    out["queries"] = len(real_queries)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


CHILDREN = {
    "medrag-build": child_medrag_build, "medrag-search": child_medrag_search, "bm25s": child_bm25s,
    "rank-bm25": child_rank_bm25, "faiss-raw": child_faiss_raw,
}


def run_child(kind: str, n: Any, nq: int, timeout: int) -> dict[str, Any] | None:
    cmd = [sys.executable, __file__, "--child", kind, "--size", str(n), "--queries", str(nq)]
    print(f"[bench] {kind} {n} …", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"[bench] {kind} {n}: timed out after {timeout} s", file=sys.stderr)
        return {"error": f"timeout {timeout}s"}
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[bench] {kind} {n}: {time.perf_counter() - start:.0f} s {result}", file=sys.stderr, flush=True)
    return result


_KINDS = ("medrag-build", "medrag-search", "faiss-raw", "bm25s", "rank-bm25")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rank-bm25-max", type=int, default=100_000)
    parser.add_argument("--bm25s-max", type=int, default=1_000_000)
    parser.add_argument("--encode-sample", type=int, default=512)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per child measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    parser.add_argument("--only", nargs="+", default=None,
                        help="rerun only these measurements (medrag-build medrag-search faiss-raw bm25s rank-bm25 "
                             "encode real) and merge them into the existing retrieval_bench.json")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the table and plot from the existing retrieval_bench.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_as_child(args: argparse.Namespace, queries: list[str]) -> None:
    if args.child == "encode":
        result = child_encode(int(args.size), queries)
    elif args.child == "real":
        result = child_real(args.size, queries)
    else:
        result = CHILDREN[args.child](int(args.size), queries)
    print(json.dumps(result))


def measured_sizes(results: dict[str, Any]) -> list[int]:
    return sorted({int(key.split(":")[1]) for key in results if key.split(":")[0] in _KINDS})


def write_outputs(out: Path, results: dict[str, Any], meta: dict[str, Any]) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval_bench.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    sizes = measured_sizes(results)
    plot(results, sizes, out / "retrieval_bench.png")
    text = report(results, sizes, meta)
    (out / "retrieval_bench.md").write_text(text)
    return text


def measure(args: argparse.Namespace, wanted: set[str] | None, results: dict[str, Any]) -> None:
    for n in sorted(args.sizes):
        for kind in _KINDS:
            if (kind == "rank-bm25" and n > args.rank_bm25_max) or (kind == "bm25s" and n > args.bm25s_max):
                continue
            if wanted is None or kind in wanted:
                results[f"{kind}:{n}"] = run_child(kind, n, args.queries, args.timeout)
    if wanted is None or "encode" in wanted:
        results["encode"] = run_child("encode", args.encode_sample, args.queries, args.timeout)
    for name in ("guidelines", "pubmedqa"):
        if wanted is None or "real" in wanted:
            results[f"real:{name}"] = run_child("real", name, args.queries, args.timeout)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.child:
        run_as_child(args, make_queries(args.queries))
        return 0
    previous = args.out / "retrieval_bench.json"
    if args.report_only:
        saved = json.loads(previous.read_text())
        write_outputs(args.out, saved["results"], saved["meta"])
        return 0
    started = time.perf_counter()
    meta = {"argv": " ".join(sys.argv[1:]), "when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
            "load_start": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    results: dict[str, Any] = {}
    wanted = set(args.only) if args.only else None
    if wanted and previous.is_file():
        saved = json.loads(previous.read_text())
        rerun = f"{meta['when']}: {' '.join(sorted(wanted))} (sizes {' '.join(map(str, args.sizes))})"
        earlier = saved["meta"].get("rerun")
        results = saved["results"]
        meta = {**saved["meta"], "rerun": f"{earlier}; {rerun}" if earlier else rerun}
    measure(args, wanted, results)
    meta["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    meta["total_s"] = meta.get("total_s", 0.0) + time.perf_counter() - started
    print(write_outputs(args.out, results, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
