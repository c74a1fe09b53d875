"""PubMed ingest benchmark: our streaming parser vs pubmed-parser on the same synthetic baseline files.

    python eval/bench_ingest.py                    # 30,000-citation file + a 10-file set (~2 GB of XML)
    python eval/bench_ingest.py --citations 3000 --files 3   # quick look

What is measured, each in a fresh process (so peak RSS is that run's own):

* ``medrag parse``   — ``medrag.ingest.pubmed.parse``: XML → Documents (title, labelled abstract, metadata)
* ``pubmed-parser``  — ``pubmed_parser.parse_medline_xml`` on the same files (the reference)
* ``medrag ingest``  — the whole pipeline: parse → token-measured chunking → Arrow shards → manifest

Throughput is citations per CPU-second of the measuring process (= per core; robust to other load on the
machine), wall time is reported beside it. The synthetic files come from ``medrag.ingest.synthetic``
(baseline-like structure and sizes, gzipped like NCBI's). Writes ``eval/results/ingest.md``,
``ingest.json`` and ``ingest.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "eval" / "results"


# ------------------------------------------------------------------------------------------ children


def _child(mode: str, files: list[str]) -> dict:
    """Run one measurement in this process and return its numbers."""
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "ours":
        from medrag.config import IngestConfig
        from medrag.ingest.pubmed import parse
        from medrag.ingest.records import Skips

        cfg, skips, n = IngestConfig(source="pubmed"), Skips(), 0
        for f in files:
            for _ in parse(Path(f), cfg, skips):
                n += 1
    elif mode == "pubmed_parser":
        import pubmed_parser

        n = 0
        for f in files:
            for _ in pubmed_parser.parse_medline_xml(f):
                n += 1
    elif mode == "pipeline":
        from medrag.ingest import ingest

        out = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        try:
            report = ingest("pubmed", files, out, progress=False)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        n = report.documents + sum(report.skipped.values())
    else:
        raise SystemExit(f"unknown mode {mode}")
    return {
        "mode": mode,
        "citations": n,
        "cpu_s": time.process_time() - c0,
        "wall_s": time.perf_counter() - t0,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ``ru_maxrss`` would include the parent's RSS at fork time."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(mode: str, files: list[Path]) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, *map(str, files)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["rate"] = result["citations"] / result["cpu_s"]
    print(f"  {mode:<14} {result['citations']:>8,} citations  {result['rate']:>8,.0f}/s per core  "
          f"wall {result['wall_s']:6.1f}s  peak RSS {result['peak_rss_mb']:7.1f} MB", flush=True)
    return result


# ------------------------------------------------------------------------------------------- driver


SHAPES = {"synthetic": False, "real-shaped": True}


def _inputs(workdir: Path, citations: int, files: int, shape: str = "synthetic") -> list[Path]:
    from medrag.ingest.synthetic import write_medline

    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, files + 1):
        tag = "" if shape == "synthetic" else f"-{shape}"
        path = workdir / f"pubmed99n{i:04d}-{citations}{tag}.xml.gz"
        if not path.exists():
            t = time.perf_counter()
            tmp = path.with_name(path.name + ".tmp")
            write_medline(tmp, citations, first_pmid=1 + (i - 1) * citations, seed=i, compress=True,
                          real_text=SHAPES[shape])
            tmp.replace(path)
            print(f"  generated {path.name} ({path.stat().st_size / 1e6:.0f} MB gz) in {time.perf_counter() - t:.0f}s")
        paths.append(path)
    return paths


def _xml_megabytes(path: Path) -> float:
    import gzip

    with gzip.open(path, "rb") as fh:
        return sum(len(b) for b in iter(lambda: fh.read(1 << 22), b"")) / 1e6


MODES = ("ours", "pubmed_parser", "pipeline")
STARTUP_CITATIONS = 100  # a tiny file: its CPU time is each process's fixed cost (imports, tokenizer load)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--citations", type=int, default=30_000, help="citations per file (baseline: ~30,000)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "medrag-bench-ingest")
    ap.add_argument("--report-only", action="store_true", help="rewrite ingest.md/png from ingest.json")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1:])))
        return
    if args.report_only:
        payload = json.loads((RESULTS / "ingest.json").read_text())
        (RESULTS / "ingest.md").write_text(_markdown(payload))
        _plot(payload, RESULTS / "ingest.png")
        return
    load_before = os.getloadavg()
    print(f"generating inputs in {args.workdir} …", flush=True)
    inputs = {shape: _inputs(args.workdir, args.citations, 1, shape) for shape in args.shapes}
    tiny = _inputs(args.workdir, STARTUP_CITATIONS, 1)
    runs, startup = [], []
    for r in range(args.rounds):  # interleaved: every implementation on every input once per round
        for shape, files in inputs.items():
            print(f"round {r + 1}, {shape}:", flush=True)
            for mode in MODES:
                runs.append({"input": shape, "round": r, "files": len(files), **_measure(mode, files)})
        print(f"round {r + 1}, start-up ({STARTUP_CITATIONS} citations):", flush=True)
        startup += [{"round": r, **_measure(mode, tiny)} for mode in MODES]
    load_after = os.getloadavg()
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    xml_mb = {shape: _xml_megabytes(files[0]) for shape, files in inputs.items()}
    payload = {"citations_per_file": args.citations, "xml_mb": xml_mb, "rounds": args.rounds, "machine": machine,
               "runs": runs, "startup": startup}
    (RESULTS / "ingest.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "ingest.md").write_text(_markdown(payload))
    _plot(payload, RESULTS / "ingest.png")
    print(f"wrote {RESULTS / 'ingest.md'}")


def _median_rows(p: dict) -> list[dict]:
    """One row per (input, mode): median rate, CPU s, wall s, peak RSS over the rounds."""
    rows = []
    for label in dict.fromkeys(r["input"] for r in p["runs"]):
        for mode in MODES:
            rs = [r for r in p["runs"] if r["input"] == label and r["mode"] == mode]
            if rs:
                med = {k: statistics.median(r[k] for r in rs) for k in ("rate", "cpu_s", "wall_s", "peak_rss_mb")}
                rows.append({"input": label, "mode": mode, "citations": rs[0]["citations"], **med})
    return rows


def _ratio(p: dict, label: str, a: str, b: str) -> float:
    """Median over rounds of (a's rate ÷ b's rate) measured in the same round."""
    by = {(r["round"], r["mode"]): r["rate"] for r in p["runs"] if r["input"] == label}
    rounds = sorted({k[0] for k in by})
    return statistics.median(by[(i, a)] / by[(i, b)] for i in rounds if (i, a) in by and (i, b) in by)


def _markdown(p: dict) -> str:
    names = {"ours": "medrag parse (XML → Documents)", "pubmed_parser": "pubmed-parser parse_medline_xml",
             "pipeline": "medrag corpus ingest --workers 1 (parse + chunk + Arrow + manifest)"}
    lines = [
        "# PubMed ingest benchmark",
        "",
        f"One MEDLINE file of {p['citations_per_file']:,} citations per input shape (gzipped, like NCBI's): "
        "`synthetic` is `medrag.ingest.synthetic`'s default (baseline structure, small fixed vocabulary); "
        "`real-shaped` (`real_text=True`) writes abstracts as real ones read: an open vocabulary, numbers and "
        "statistics, and non-ASCII symbols (±, µg, β-, ≥) in about half of them. Each row is the median of "
        f"{p['rounds']} interleaved rounds, each measurement a fresh process; throughput is citations per "
        "CPU-second of that process (= per core), so other load on the machine affects it little.",
        "",
        "| input | implementation | citations | CPU s | citations/s per core | wall s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in _median_rows(p):
        lines.append(
            f"| {r['input']} | {names[r['mode']]} | {r['citations']:,} | {r['cpu_s']:.1f} | {r['rate']:,.0f} | "
            f"{r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += ["", "| input | medrag parse ÷ pubmed-parser | medrag ingest end to end ÷ pubmed-parser |",
              "|---|---:|---:|"]
    for label in dict.fromkeys(r["input"] for r in p["runs"]):
        lines.append(f"| {label} | {_ratio(p, label, 'ours', 'pubmed_parser'):.2f}× | "
                     f"{_ratio(p, label, 'pipeline', 'pubmed_parser'):.2f}× |")
    if p.get("startup"):
        fixed = {mode: statistics.median(r["cpu_s"] for r in p["startup"] if r["mode"] == mode) for mode in MODES}
        main = {r["mode"]: r["cpu_s"] for r in _median_rows(p) if r["input"] == next(iter(p["xml_mb"]))}
        lines += ["", f"Start-up: each process's CPU time on a {STARTUP_CITATIONS}-citation file (imports, tokenizer "
                  "load), median over the rounds, and its share of the first input's CPU time:", "",
                  "| implementation | start-up CPU s | share |", "|---|---:|---:|"]
        for mode in MODES:
            share = f"{fixed[mode] / main[mode]:.0%}" if main.get(mode) else "–"
            lines.append(f"| {names[mode]} | {fixed[mode]:.2f} | {share} |")
    m = p["machine"]
    lines += [
        "",
        "Ratios are medians of the per-round ratios. What each does: `pubmed-parser` (defaults) returns a dict per "
        "citation with more fields than a chunk needs (authors, affiliations, reference PMIDs, grants, keywords, "
        "chemicals); `medrag parse` extracts what a chunk carries; `medrag ingest` also chunks (exact WordPiece "
        "sizes from a whitespace split and cached per-word counts; every chunk re-tokenised in the tests), writes "
        "Arrow shards and the manifest.",
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, {m['platform']}; load average (1/5/15 min) "
        f"{m['loadavg_before']} before and {m['loadavg_after']} after the run (the machine is shared).",
        "",
        "Reproduce: `python eval/bench_ingest.py` (options: `--citations`, `--rounds`, `--shapes`).",
        "",
    ]
    return "\n".join(lines)


def _plot(p: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["input"] for r in p["runs"]))
    modes = [("ours", "medrag parse"), ("pubmed_parser", "pubmed-parser"), ("pipeline", "medrag ingest (full)")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(modes)
    for k, (mode, name) in enumerate(modes):
        med = _median_rows(p)
        rates = [next((r["rate"] for r in med if r["input"] == lab and r["mode"] == mode), 0) for lab in labels]
        rss = [next((r["peak_rss_mb"] for r in med if r["input"] == lab and r["mode"] == mode), 0) for lab in labels]
        xs = [i + k * width for i in range(len(labels))]
        axes[0].bar(xs, rates, width, label=name)
        axes[1].bar(xs, rss, width, label=name)
    for ax, title in zip(axes, ("citations / s per core", "peak RSS (MB)"), strict=True):
        ax.set_xticks([i + width for i in range(len(labels))], labels)
        ax.set_title(title)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(modes), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
