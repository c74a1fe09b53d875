"""BM25 head to head: medrag's public ``search()``/``batch_search()`` vs bm25s at its fastest, same run.

Both sides answer the same queries over the same index and return documents:

* **medrag** — ``load_index(..., mode="bm25")``; ``search(q)`` / ``batch_search(qs)`` return ``Hit`` objects with
  text, title and metadata read from the memory-mapped Arrow corpus;
* **medrag batch_search() 1 thread** — the same with ``load_index(..., threads=1)`` (no second core);
* **medrag search()/batch_search() rows=memory** — ``load_index(..., rows="memory")``: the corpus decoded once at
  load and held as Python objects, as bm25s holds its documents (the configuration bm25s' fast path uses);
* **rows=memory, one Metadata per row** (labelled): the same, with every held row given its own ``Metadata``
  object. Held rows share equal values (the synthetic corpus' metadata is only a year, so its 100k rows share
  ~350 ``Metadata`` objects); a corpus with a PMID per document shares only within a document. This row shows
  the cost when nothing is shared;
* **bm25s fast** — bm25s' documented fast configuration: ``backend="numba"``, the index loaded in memory
  (``mmap=False``, medrag's own saved bm25s files, so scores are identical), a fixed-vocabulary tokenizer
  (medrag's analyzer rules + the index vocabulary, each distinct word resolved once and remembered as bm25s'
  ``Tokenizer`` memoises its stems — the same per-query work as medrag's), ``retrieve(..., corpus=docs)``
  returning its in-memory documents; single queries, batches (1 thread) and batches with ``n_threads=2``;
* **bm25s slow path** (labelled, for reference — what the README used to compare against): numpy backend,
  memory-mapped, ``bm25s.tokenize`` per query (its own tokenizer; top-10 agreement therefore lower).

Rounds are interleaved (every configuration once per round, each run for at least ``MIN_SECONDS``) and the median of ``--rounds`` is reported,
with medrag ÷ bm25s ratios per round (the machine may be shared: ratios are what carries over).
``--curve`` measures ``search()`` latency end to end (tokenisation → ``Hit`` with text and metadata) at each
size, and its two parts apart (BM25 scoring, fetching the k hits), for docs/scaling.md.

    python eval/bench_bm25.py --sizes 100000 1000000 --queries 1000 --rounds 3
    python eval/bench_bm25.py --curve 10000 100000 1000000 2000000
    python eval/bench_bm25.py --load-cost 100000 1000000   # load time and RAM of rows="mmap" / "memory"
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retrieval_data import WORK, make_corpus, make_queries  # noqa: E402

K = 10
BATCH = 100


def index_dir(n: int) -> Path:
    """A BM25-only medrag index over the synthetic corpus of ``n`` chunks (built once, then reused)."""
    from medrag.config import IndexConfig
    from medrag.index import build_index

    out = WORK / f"bm25idx-{n}"
    if not (out / "manifest.json").is_file():
        build_index([make_corpus(n)], out, IndexConfig(dense=False), progress=False)
    return out


class Bm25sFast:
    """bm25s, numba backend, in memory, fixed vocabulary, returning its documents.

    Queries are tokenised by medrag's rules (so both sides see identical terms) with each distinct word resolved
    once and remembered, as bm25s' own ``Tokenizer`` memoises word -> stem and word -> id."""

    def __init__(self, path: Path, retriever: Any) -> None:
        import bm25s

        self.model = bm25s.BM25.load(str(path / "bm25"), mmap=False, load_corpus=False)
        self.model.backend = "numba"
        self.vocab = self.model.vocab_dict
        self.tokenizer = retriever.bm25.tokenizer
        self.word_ids: dict[str, int] = {}  # word -> vocabulary id, -1 for a stopword or an unknown term
        table = retriever.corpus.table.select(["chunk_id", "title", "text"])
        self.docs = table.to_pylist()

    def ids(self, query: str) -> list[int]:
        memo, out = self.word_ids, []
        for word in self.tokenizer.words(query):
            tid = memo.get(word)
            if tid is None:
                tid = memo[word] = -1 if word in self.tokenizer.stopwords else self.vocab.get(self._stem(word), -1)
            if tid >= 0:
                out.append(tid)
        return out

    def _stem(self, word: str) -> str:
        return self.tokenizer.stem(word) if self.tokenizer.stem is not None else word

    def retrieve(self, queries: list[str], threads: int = 0) -> Any:
        return self.model.retrieve([self.ids(q) for q in queries], corpus=self.docs, k=K, show_progress=False,
                                   n_threads=threads, backend_selection="numba")


class Bm25sSlow:
    """The slow path: numpy backend, memory-mapped, ``bm25s.tokenize`` per query."""

    def __init__(self, path: Path, docs: list[dict[str, Any]]) -> None:
        import bm25s
        import Stemmer

        self.bm25s = bm25s
        self.model = bm25s.BM25.load(str(path / "bm25"), mmap=True, load_corpus=False)
        self.stemmer = Stemmer.Stemmer("english")
        self.docs = docs

    def retrieve(self, queries: list[str]) -> Any:
        tokens = self.bm25s.tokenize(queries, stopwords="en", stemmer=self.stemmer, show_progress=False)
        return self.model.retrieve(tokens, corpus=self.docs, k=K, show_progress=False, backend_selection="numpy")


def _ranked(docs: Any, scores: Any) -> list[list[tuple[str, float]]]:
    """bm25s' (documents, scores) as (chunk id, score) lists, zero-score fillers dropped."""
    return [[(d["chunk_id"], float(s)) for d, s in zip(row, srow, strict=True) if s > 0]
            for row, srow in zip(docs, scores, strict=True)]


def same_top(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    """Same scores rank by rank and the same documents, except the order within tied scores and which of
    the documents tied at the cut made it in."""
    if len(a) != len(b) or any(abs(x[1] - y[1]) > 1e-5 * max(1.0, abs(x[1])) for x, y in zip(a, b, strict=True)):
        return False
    if not a:
        return True
    cut = a[-1][1]
    above = lambda r: sorted(d for d, s in r if s > cut + 1e-5 * max(1.0, cut))  # noqa: E731
    return above(a) == above(b)


#: each measurement repeats its pass over the queries until it has run this long (one pass of 1,000 queries can
#: take 50 ms: a scheduler hiccup or one garbage collection would otherwise swing a round by 20-40 %)
MIN_SECONDS = 1.0


def _qps(fn: Any, items: list[Any], per_call: int = 1) -> float:
    """Queries/s of ``fn`` over ``items``, passes repeated for at least ``MIN_SECONDS`` (after a full collection,
    so garbage left by the previous configuration is not collected on this one's time)."""
    gc.collect()
    done, start = 0, time.perf_counter()
    while True:
        for item in items:
            fn(item)
        done += len(items) * per_call
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS:
            return done / elapsed


def _batches(queries: list[str]) -> list[list[str]]:
    return [queries[i: i + BATCH] for i in range(0, len(queries), BATCH)]


def head_to_head(n: int, queries: list[str], rounds: int) -> dict[str, Any]:
    import medrag

    path = index_dir(n)
    retriever = medrag.load_index(path, mode="bm25")  # batches on every core (the default)
    single = medrag.load_index(path, mode="bm25", threads=1)
    start = time.perf_counter()
    held = medrag.load_index(path, mode="bm25", rows="memory")
    held_load_s = time.perf_counter() - start
    unshared = medrag.load_index(path, mode="bm25", rows="memory")
    unshared.corpus._memory = [(*row[:7], replace(row[7])) for row in unshared.corpus._memory]  # a copy per row
    fast = Bm25sFast(path, retriever)
    slow = Bm25sSlow(path, fast.docs)
    ours = [[(h.chunk_id, h.score) for h in hits] for hits in retriever.batch_search(queries, k=K)]
    ours_held = [[(h.chunk_id, h.score) for h in hits] for hits in held.batch_search(queries, k=K)]
    ours_held_single = [[(h.chunk_id, h.score) for h in held.search(q, k=K)] for q in queries]
    theirs = _ranked(*fast.retrieve(queries))
    slow_ids = _ranked(*slow.retrieve(queries[:200]))
    batches = _batches(queries)
    configs = {
        "medrag search()": lambda: _qps(lambda q: retriever.search(q, k=K), queries),
        "medrag search() rows=memory": lambda: _qps(lambda q: held.search(q, k=K), queries),
        "medrag search() rows=memory unshared": lambda: _qps(lambda q: unshared.search(q, k=K), queries),
        "bm25s fast single": lambda: _qps(lambda q: fast.retrieve([q]), queries),
        "medrag batch_search()": lambda: _qps(lambda b: retriever.batch_search(b, k=K), batches, BATCH),
        "medrag batch_search() 1 thread": lambda: _qps(lambda b: single.batch_search(b, k=K), batches, BATCH),
        "medrag batch_search() rows=memory": lambda: _qps(lambda b: held.batch_search(b, k=K), batches, BATCH),
        "medrag batch_search() rows=memory unshared": lambda: _qps(lambda b: unshared.batch_search(b, k=K), batches,
                                                                   BATCH),
        "bm25s fast batch": lambda: _qps(fast.retrieve, batches, BATCH),
        "bm25s fast batch 2 threads": lambda: _qps(lambda b: fast.retrieve(b, threads=2), batches, BATCH),
        "bm25s slow path single": lambda: _qps(lambda q: slow.retrieve([q]), queries[:200]),
    }
    for fn in configs.values():  # warm-up (numba compilation, page cache)
        fn()
    per_round: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, fn in configs.items():
            per_round[name].append(fn())
    median = {name: statistics.median(v) for name, v in per_round.items()}
    bm25s_best = [max(a, b) for a, b in zip(per_round["bm25s fast batch"], per_round["bm25s fast batch 2 threads"],
                                            strict=True)]
    ratios = {
        "single": [a / b for a, b in zip(per_round["medrag search()"], per_round["bm25s fast single"], strict=True)],
        "single rows=memory": [a / b for a, b in zip(per_round["medrag search() rows=memory"],
                                                     per_round["bm25s fast single"], strict=True)],
        "batch rows=memory vs bm25s best of 1/2 threads": [
            a / b for a, b in zip(per_round["medrag batch_search() rows=memory"], bm25s_best, strict=True)],
        "single rows=memory unshared": [a / b for a, b in zip(per_round["medrag search() rows=memory unshared"],
                                                              per_round["bm25s fast single"], strict=True)],
        "batch rows=memory unshared vs bm25s best of 1/2 threads": [
            a / b for a, b in zip(per_round["medrag batch_search() rows=memory unshared"], bm25s_best, strict=True)],
        "batch vs bm25s best of 1/2 threads": [a / b for a, b in zip(per_round["medrag batch_search()"], bm25s_best,
                                                                      strict=True)],
        "batch": [a / b for a, b in zip(per_round["medrag batch_search()"], per_round["bm25s fast batch"], strict=True)],
        "batch vs bm25s 2 threads": [a / b for a, b in zip(per_round["medrag batch_search()"],
                                                              per_round["bm25s fast batch 2 threads"], strict=True)],
    }
    return {
        "chunks": n,
        "queries": len(queries),
        "qps_median": median,
        "qps_rounds": per_round,
        "ratio_median": {k: statistics.median(v) for k, v in ratios.items()},
        "top10_identical_fast": sum(map(same_top, ours, theirs)) / len(queries),
        "top10_identical_fast_rows_memory": min(sum(map(same_top, ours_held, theirs)),
                                                sum(map(same_top, ours_held_single, theirs))) / len(queries),
        "rows_memory_load_s": held_load_s,
        "top10_identical_slow": sum(map(same_top, ours[:200], slow_ids)) / len(slow_ids),
    }


def curve(sizes: list[int], queries: list[str]) -> list[dict[str, Any]]:
    """``search()`` latency (ms) per size, end to end (tokenisation -> ``Hit`` with text and metadata), and its
    two parts measured separately on the same query: BM25 scoring (``search_rows``: tokenise, score the
    postings, top-k) and fetching the ``k`` hits (``Corpus.hits``). Sizes interleaved query by query."""
    import medrag

    retrievers = {n: medrag.load_index(index_dir(n), mode="bm25") for n in sizes}
    for r in retrievers.values():
        for q in queries[:50]:
            r.search(q, k=K)
    times: dict[int, dict[str, list[float]]] = {n: {"search": [], "score": [], "fetch": []} for n in sizes}
    for q in queries:
        for n, r in retrievers.items():
            start = time.perf_counter()
            hits = r.search(q, k=K)
            mid = time.perf_counter()
            (rows, scores), = r.search_rows([q], K)
            scored = time.perf_counter()
            r.corpus.hits(rows, scores)
            end = time.perf_counter()
            for part, t in (("search", mid - start), ("score", scored - mid), ("fetch", end - scored)):
                times[n][part].append(t * 1000)
            if hits and not hits[0].text:
                raise SystemExit("hit without text")
    out = []
    for n in sizes:
        row: dict[str, Any] = {"chunks": n}
        for part, t in times[n].items():
            t = sorted(t)
            row.update({f"{part}_p50_ms": statistics.median(t), f"{part}_p90_ms": t[int(0.9 * len(t))],
                        f"{part}_mean_ms": statistics.fmean(t)})
        out.append(row)
    return out


def take_curve(sizes: list[int], k: int = K, draws: int = 300) -> list[dict[str, Any]]:
    """Hit materialisation alone: ``Corpus.hits`` of ``k`` random rows vs the previous implementation
    (``pyarrow.Table.take`` over the whole table + ``to_pylist``), per corpus size, interleaved.

    Sizes above the largest built corpus reuse it several times (``Corpus.open_many([c, c])`` = 2M rows from
    the 1M corpus): what is measured is reading k rows out of a corpus of that many rows and shards.
    """
    import numpy as np
    import pyarrow as pa

    from medrag.ingest.store import Corpus

    base = 1_000_000
    corpora = {n: Corpus.open(make_corpus(n)) if n <= base else Corpus.open_many([make_corpus(base)] * (n // base))
               for n in sizes}
    rng = np.random.default_rng(5)
    new: dict[int, list[float]] = {n: [] for n in sizes}
    old: dict[int, list[float]] = {n: [] for n in sizes}
    for i in range(draws):
        for n, c in corpora.items():
            rows = rng.integers(0, c.num_rows, size=k)
            start = time.perf_counter()
            c.hits(rows, np.ones(k))
            new[n].append((time.perf_counter() - start) * 1000)
            if i < draws // 10:  # the old path is slow at large sizes: fewer draws
                start = time.perf_counter()
                c.table.take(pa.array(rows)).to_pylist()
                old[n].append((time.perf_counter() - start) * 1000)
    return [{"chunks": n, "hits_p50_ms": statistics.median(new[n]), "old_take_p50_ms": statistics.median(old[n])}
            for n in sizes]


_LOAD_PROBE = """
import json, sys, time
import medrag
start = time.perf_counter()
r = medrag.load_index(sys.argv[1], mode="bm25", rows=sys.argv[2])
took = time.perf_counter() - start
r.search("warfarin bleeding", k=10)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kb = lambda key: int(status[key].split()[0])
print(json.dumps({"load_s": took, "rss_mb": kb("VmRSS") / 1024, "rss_anon_mb": kb("RssAnon") / 1024}))
"""


def load_cost(sizes: list[int]) -> list[dict[str, Any]]:
    """``load_index(mode="bm25")`` time and resident memory with ``rows="mmap"`` / ``"memory"``, each in a fresh
    process (``RssAnon``: the process' own memory, without the page cache of the memory-mapped files)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = []
    for n in sizes:
        row: dict[str, Any] = {"chunks": n}
        for rows in ("mmap", "memory"):
            done = subprocess.run([sys.executable, "-c", _LOAD_PROBE, str(index_dir(n)), rows], env=env,
                                  check=True, capture_output=True, text=True)
            row[rows] = json.loads(done.stdout.strip().splitlines()[-1])
        out.append(row)
    return out


def markdown(result: dict[str, Any], command: str) -> str:
    """The head-to-head as a small table (queries/s, median of the rounds; ratios are medians of per-round ratios)."""
    m = result["machine"]
    lines = ["# BM25: medrag `search()`/`batch_search()` vs bm25s at its fastest\n",
             f"`{command}` — {m['cpus']} CPUs, load average {m['loadavg'][0]:.1f} before / "
             f"{m['loadavg_after'][0]:.1f} after (the machine was shared: compare the ratios).\n",
             "bm25s: numba backend, index in memory, fixed vocabulary, returning its in-memory documents. medrag: "
             "`rows=mmap` (the default) decodes each answer's hits from the memory-mapped Arrow corpus; "
             "`rows=memory` (`load_index(..., rows=\"memory\")`) decodes the corpus once at load and holds it "
             "in memory, as bm25s holds its documents.\n",
             "| chunks | medrag rows | medrag search() | bm25s single | ratio | medrag batch_search() (1 thread) | "
             "bm25s batch 1 / 2 threads | ratio vs bm25s best | top-10 identical |",
             "|---:|:--|---:|---:|---:|---:|---:|---:|---:|"]
    for run in result["runs"]:
        q, r = run["qps_median"], run["ratio_median"]
        theirs = f"{q['bm25s fast single']:,.0f}", f"{q['bm25s fast batch']:,.0f} / {q['bm25s fast batch 2 threads']:,.0f}"
        lines.append(
            f"| {run['chunks']:,} | mmap (default) | {q['medrag search()']:,.0f} | {theirs[0]} | {r['single']:.2f}× | "
            f"{q['medrag batch_search()']:,.0f} ({q['medrag batch_search() 1 thread']:,.0f}) | {theirs[1]} | "
            f"{r['batch vs bm25s best of 1/2 threads']:.2f}× | {run['top10_identical_fast']:.0%} |")
        if "medrag search() rows=memory" in q:
            lines.append(
                f"| {run['chunks']:,} | memory | {q['medrag search() rows=memory']:,.0f} | {theirs[0]} | "
                f"{r['single rows=memory']:.2f}× | {q['medrag batch_search() rows=memory']:,.0f} | {theirs[1]} | "
                f"{r['batch rows=memory vs bm25s best of 1/2 threads']:.2f}× | "
                f"{run['top10_identical_fast_rows_memory']:.0%} |")
        if "medrag search() rows=memory unshared" in q:
            lines.append(
                f"| {run['chunks']:,} | memory, one Metadata per row | {q['medrag search() rows=memory unshared']:,.0f} | "
                f"{theirs[0]} | {r['single rows=memory unshared']:.2f}× | "
                f"{q['medrag batch_search() rows=memory unshared']:,.0f} | {theirs[1]} | "
                f"{r['batch rows=memory unshared vs bm25s best of 1/2 threads']:.2f}× | |")
    lines.append("\nbm25s' slow path (numpy backend, mmap, `bm25s.tokenize` per query), queries/s: " + ", ".join(
        f"{run['chunks']:,} chunks {run['qps_median']['bm25s slow path single']:,.0f}"
        for run in result["runs"]) + ".")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--curve", type=int, nargs="*", help="latency curve at these sizes instead")
    ap.add_argument("--take-curve", type=int, nargs="*", help="hit materialisation alone at these sizes")
    ap.add_argument("--load-cost", type=int, nargs="*", help="load time and RAM of rows=mmap/memory at these sizes")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    args = ap.parse_args(argv)
    queries = make_queries(args.queries)
    meta = {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.load_cost:
        result = {"load_cost": load_cost(args.load_cost), "machine": meta}
        name = "bm25_load_cost.json"
    elif args.take_curve:
        result = {"take_curve": take_curve(args.take_curve), "machine": meta}
        name = "bm25_take_curve.json"
    elif args.curve:
        result: Any = {"curve": curve(args.curve, queries), "machine": meta}
        name = "bm25_curve.json"
    else:
        result = {"runs": [head_to_head(n, queries, args.rounds) for n in args.sizes], "machine": meta}
        name = "bm25_vs_bm25s.json"
    result["machine"]["loadavg_after"] = os.getloadavg()
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    if name == "bm25_vs_bm25s.json":
        command = "python eval/bench_bm25.py " + " ".join(argv if argv is not None else sys.argv[1:])
        (args.out / "bm25_vs_bm25s.md").write_text(markdown(result, command))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
