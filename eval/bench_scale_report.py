"""Table, plots and extrapolation for ``bench_scale.py`` (``scale.md``, ``scale.png``).

Extrapolation: for each measured series, a straight line ``y = c + s·N`` fitted by least squares to the largest
three measured sizes (a fixed cost plus a per-chunk cost: what a linear-time build, an index of fixed bytes
per chunk or a scan-all search has), evaluated at 24M (PubMed) and 54M (MedCorp) chunks. The exponent ``b``
of a power law ``y = a·N^b`` over the same points is printed next to it: b ≈ 1 says the line is the right
model; b well below 1 marks a series dominated by fixed costs (trained quantizers, constant training sample)
or a sub-linear search, whose linear extrapolation is an upper bound.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {"PubMed 24M": 24_000_000, "MedCorp 54M": 54_000_000}
METRICS = [("build_s", "build s"), ("bytes", "index MB"), ("peak_anon_mb", "peak anon MB"),
           ("p50_ms", "p50 ms/query"), ("batch_ms_per_query", "ms/query in batch of 200"),
           ("recall_at_10", "recall@10 vs exact")]


def load_results(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _largest(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return sorted((n, y) for n, y in points if y and y > 0)[-3:]


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """``(c, s)`` of ``y = c + s·N`` over the largest three points (None with fewer than two)."""
    pts = _largest(points)
    if len(pts) < 2:
        return None
    s, c = np.polyfit([p[0] for p in pts], [p[1] for p in pts], 1)
    return float(c), float(s)


def fit_power(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """``(a, b)`` of ``y = a * N**b`` over the largest three points (None with fewer than two)."""
    pts = _largest(points)
    if len(pts) < 2:
        return None
    b, log_a = np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)
    return float(math.exp(log_a)), float(b)


def _kinds(results: dict[str, Any]) -> list[str]:
    return sorted(k for k in results if not k.startswith("_"))


def _series(results: dict[str, Any], kind: str, metric: str) -> list[tuple[int, float]]:
    out = []
    for n, row in results.get(kind, {}).items():
        if "error" not in row and row.get(metric) is not None:
            value = row[metric] / 2**20 if metric == "bytes" else row[metric]
            out.append((int(n), float(value)))
    return sorted(out)


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def table(results: dict[str, Any]) -> list[str]:
    sizes = sorted({int(n) for kind in _kinds(results) for n in results[kind]})
    lines = ["| kind | metric | " + " | ".join(f"{n:,}" for n in sizes) + " |",
             "|---|---|" + "---:|" * len(sizes)]
    for kind in _kinds(results):
        for metric, label in METRICS:
            values = dict(_series(results, kind, metric))
            if not values:
                continue
            cells = []
            for n in sizes:
                row = results[kind].get(str(n), {})
                cells.append(_fmt(values[n]) if n in values else ("timeout" if "timeout" in row.get("error", "")
                                                                   else "—"))
            lines.append(f"| {kind} | {label} | " + " | ".join(cells) + " |")
    return lines


def extrapolation(results: dict[str, Any]) -> list[str]:
    lines = ["| kind | metric | fit over sizes | per 1M chunks | power exponent b | " + " | ".join(TARGETS) + " |",
             "|---|---|---|---:|---:|" + "---:|" * len(TARGETS)]
    for kind in _kinds(results):
        for metric, label in METRICS[:5]:
            points = _series(results, kind, metric)
            line, power = fit_line(points), fit_power(points)
            if line is None or power is None:
                continue
            c, slope = line
            used = ", ".join(f"{n // 1000:,}k" for n, _ in _largest(points))
            cells = [_fmt(max(c + slope * t, 0.0)) for t in TARGETS.values()]
            lines.append(f"| {kind} | {label} | {used} | {_fmt(slope * 1e6)} | {power[1]:.2f} | "
                         + " | ".join(cells) + " |")
    return lines


def real_section(real: dict[str, Any] | None) -> list[str]:
    if not real or "error" in real:
        return []
    rows = [f"| {k} | {v['recall_at_10']:.3f} | {v['bytes_per_vector']:.0f} |" for k, v in real.items()
            if isinstance(v, dict)]
    return ["", "## Real embeddings (sanity check)", "",
            f"Recall@10 against exact search on real MiniLM vectors: the embedded guideline index ({real['rows']:,}",
            f"chunks) and its {real['queries']} real questions (`python eval/bench_scale.py --real`; nprobe 8).",
            "Small, so IVF lists are few and bytes/vector include the codebooks; read it for the PQ error on real",
            "embedding geometry, not for scale.", "", "| index | recall@10 | bytes/vector |", "|---|---:|---:|", *rows]


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 9))
    colors = plt.get_cmap("tab20").colors
    style = {kind: (colors[i % len(colors)], "s" if kind.startswith(("bm25", "engine")) else "o")
             for i, kind in enumerate(_kinds(results))}
    for ax, (metric, label) in zip(axes.flat, METRICS, strict=True):
        for kind in _kinds(results):
            points = _series(results, kind, metric)
            if points:
                color, marker = style[kind]
                ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, color=color, label=kind)
        ax.set_xscale("log")
        if metric != "recall_at_10":
            ax.set_yscale("log")
        ax.set_xlabel("chunks")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker=m, label=k) for k, (c, m) in style.items()]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=8)
    fig.suptitle("medrag growth curves (synthetic chunks / clustered 384-d vectors, 2 shared CPU cores)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict[str, Any], out_dir: Path) -> None:
    loads = [row.get("load_avg") for k in _kinds(results) for row in results[k].values() if row.get("load_avg")]
    errors = [f"- {kind} @ {n:,}: {row['error']}" for kind in _kinds(results)
              for n, row in sorted((int(k), v) for k, v in results[kind].items()) if "error" in row]
    lines = [
        "# Growth curves (`python eval/bench_scale.py`)",
        "",
        "Synthetic medical-like chunks (`eval/bench_retrieval_data.py`) for BM25; synthetic clustered 384-d unit",
        "vectors for FAISS (encoding is not feasible at these sizes on 2 CPU cores). Every cell is one child",
        "process on a 2-core machine shared with other jobs "
        f"(1-min load average during the runs: {min(loads):.1f}–{max(loads):.1f})." if loads else "",
        "Latency: one query per call (p50) and per query in a batch of 200 (FAISS, 2 threads). IVF nprobe 32,",
        "HNSW efSearch 128; the 4-shard index probes 32 lists in each shard. Index MB = bytes on disk.",
        "",
        *table(results),
        "",
        "## Extrapolation to PubMed (24M chunks) and MedCorp (54M)",
        "",
        "Straight line `y = c + s·N` fitted to the three largest measured sizes of each series (the power-law",
        "exponent b over the same points is shown: b ≈ 1 = linear; b < 1 = fixed costs or sub-linear search, so",
        "the line is an upper bound).",
        "Derived figures, not measurements: see `docs/scaling.md` for the capacity plan built on them.",
        "",
        *extrapolation(results),
    ]
    if errors:
        lines += ["", "Not measured (per-point timeout or failure):", "", *errors]
    lines += real_section(results.get("_real"))
    (out_dir / "scale.md").write_text("\n".join(lines) + "\n")
    plot(results, out_dir / "scale.png")
