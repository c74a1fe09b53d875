"""Load benchmark of ``medrag serve``: many concurrent ``/search`` requests, against in-process search.

    python eval/bench_serve.py                              # 2,000 requests, 32 concurrent, hybrid + bm25
    python eval/bench_serve.py --requests 500 --modes hybrid  # quick look

What is measured, on the same index (default ``indexes/default``: the embedded guideline corpus; built
when missing) and the same distinct queries (chunk titles + the first words of chunk texts, so the query
vector cache never hits):

* ``in-process``  — ``HybridRetriever.search`` called sequentially in this process: the raw search cost;
* ``HTTP, 1 at a time`` — the same queries through ``medrag serve`` (a separate process, loopback), one
  request in flight, each right after its in-process twin (paired, so load changes hit both): raw cost +
  HTTP/JSON/validation overhead;
* ``HTTP, N concurrent`` — ``--requests`` requests with ``--concurrency`` in flight (httpx async). Every
  response must be a 200 with k hits; the run fails otherwise.

Writes ``eval/results/serve.md``, ``serve.json`` and ``serve.png`` (latency CDFs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "eval" / "results"


def _index(path: Path) -> Path:
    if (path / "manifest.json").is_file():
        return path
    from medrag import build_index
    from medrag.ingest.guidelines import build_default_corpus

    print(f"building {path} from the embedded guideline corpus …", file=sys.stderr)
    return build_index([build_default_corpus(ROOT / "corpora" / "guidelines")], path)


def _queries(retriever: Any, n: int, seed: int) -> list[str]:
    """``n`` distinct queries from the corpus: a chunk's title and the first 3–8 words of its text."""
    rng = random.Random(seed)
    corpus = retriever.corpus
    out: dict[str, None] = {}
    while len(out) < n:
        chunk = corpus.chunk(rng.randrange(corpus.num_rows))
        words = chunk.text.split()[: rng.randint(3, 8)]
        out.setdefault(" ".join([chunk.title.split(":")[0], *words])[:300], None)
    return list(out)


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"n": int(ms.size), "mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def paired(retriever: Any, base: str, queries: list[str], k: int, mode: str) -> dict[str, Any]:
    """Each query searched in-process, then over HTTP (one request in flight), back to back, so both see the
    same machine load; the server overhead is the median of the per-query differences. (In-process and
    server caches are separate: each side sees every query for the first time.)"""
    import httpx

    r = retriever.with_options(mode=mode)
    r.search("warm up", k=k)
    raw: list[float] = []
    http: list[float] = []
    failures = 0
    with httpx.Client(base_url=base, timeout=120) as client:
        for q in queries:
            s = time.perf_counter()
            r.search(q, k=k)
            raw.append(time.perf_counter() - s)
            s = time.perf_counter()
            resp = client.post("/search", json={"query": q, "k": k, "mode": mode})
            http.append(time.perf_counter() - s)
            failures += int(resp.status_code != 200 or len(resp.json()["hits"]) != k)
    diff_ms = float(np.median(np.asarray(http) - np.asarray(raw)) * 1000)
    return {
        "in-process": {**_stats(raw), "rps": len(raw) / sum(raw), "latencies": raw},
        "HTTP, 1 at a time": {**_stats(http), "rps": len(http) / sum(http), "failures": failures,
                              "latencies": http},
        "overhead_ms": diff_ms,
    }


async def over_http(base: str, queries: list[str], k: int, mode: str, concurrency: int) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    failures: list[str] = []
    todo = iter(queries)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        async def worker() -> None:
            for q in todo:
                s = time.perf_counter()
                try:
                    r = await client.post("/search", json={"query": q, "k": k, "mode": mode})
                    ok = r.status_code == 200 and len(r.json()["hits"]) == k
                    if not ok:
                        failures.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                lat.append(time.perf_counter() - s)

        before = (await client.get("/health")).json()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        after = (await client.get("/health")).json()
    batches = after["search_batches"] - before["search_batches"]
    per_batch = (after["searches"] - before["searches"]) / max(1, batches)
    return {**_stats(lat), "wall_s": wall, "rps": len(queries) / wall, "failures": len(failures),
            "failure_examples": failures[:5], "concurrency": concurrency, "queries_per_batch": per_batch,
            "latencies": lat}


def _start_server(index: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "medrag.cli", "serve", "--index", str(index), "--no-llm", "--port", str(port),
           "--log-level", "warning"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start in 300 s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(results["modes"])
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        for label, run in results["modes"][mode].items():
            ms = np.sort(np.asarray(run["latencies"]) * 1000)
            ax.plot(ms, np.arange(1, ms.size + 1) / ms.size, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"/search latency, mode {mode}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _markdown(res: dict[str, Any]) -> str:
    a = res["args"]
    lines = [
        "# HTTP service load benchmark (`medrag serve`)", "",
        f"Index `{a['index']}` ({res['rows']:,} chunks), k = {a['k']}, {a['requests']:,} distinct queries "
        "(chunk titles + first words of chunk texts). The server is a separate `medrag serve --no-llm` process on "
        "127.0.0.1; the client is httpx (async) in the benchmark process. Latency is per request, measured by the "
        "client (includes queueing when requests are concurrent).", "",
        "| mode | run | requests | failures | p50 ms | p95 ms | p99 ms | max ms | requests/s | queries per batch |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, runs in res["modes"].items():
        for label, r in runs.items():
            merged = f"{r['queries_per_batch']:.1f}" if "queries_per_batch" in r else "–"
            lines.append(f"| {mode} | {label} | {r['n']:,} | {r.get('failures', 0)} | {r['p50_ms']:.1f} | "
                         f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['rps']:.1f} | {merged} |")
    lines += ["", "| mode | server overhead per request (median of HTTP − in-process, same query, back to back) | "
                  "HTTP p50 ÷ in-process p50 | concurrent throughput ÷ in-process sequential |", "|---|---:|---:|---:|"]
    for mode, runs in res["modes"].items():
        raw, one, many = runs["in-process"], runs["HTTP, 1 at a time"], runs[f"HTTP, {a['concurrency']} concurrent"]
        lines.append(f"| {mode} | {res['overhead_ms'][mode]:.1f} ms | {one['p50_ms'] / raw['p50_ms']:.2f}× | "
                     f"{many['rps'] / raw['rps']:.2f}× |")
    lines += [
        "", "How the server handles load: searches run on one worker thread (the event loop only parses, validates "
        "and serialises); requests that arrive while a search runs are merged into one `batch_search` per "
        "(mode, k, filters), so the dense encoder embeds them as one batch. Under concurrency, latency is mostly "
        "queueing; throughput is what the merged batches sustain. The paired rows (in-process and 1-at-a-time "
        "HTTP, same query back to back) see the same load; compare rows within one run, not across runs.", "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}; load average "
        f"(1/5/15 min) {res['load_before']} before and {res['load_after']} after the run (the machine is shared "
        "with other jobs, and the server, the client and the in-process runs share its cores).", "",
        f"Reproduce: `python eval/bench_serve.py --requests {a['requests']} --concurrency {a['concurrency']} "
        f"--modes {','.join(res['modes'])}`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--index", type=Path, default=ROOT / "indexes" / "default")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--sequential", type=int, default=300, help="queries in the paired in-process / 1-at-a-time runs")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--modes", default="hybrid,bm25")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()

    from medrag import load_index

    index = _index(args.index)
    retriever = load_index(index)
    modes = [m for m in args.modes.split(",") if m]
    # distinct queries per run (no cache hits): in-process and 1-at-a-time share theirs
    pool = _queries(retriever, args.requests + args.sequential * (len(modes) + 1), args.seed)
    load_before = [round(x, 2) for x in os.getloadavg()]
    port = _free_port()
    server = _start_server(index, port)
    res: dict[str, Any] = {"args": {**vars(args), "index": str(args.index), "out": str(args.out)},
                           "rows": retriever.corpus.num_rows, "modes": {}}
    try:
        base = f"http://127.0.0.1:{port}"
        for i, mode in enumerate(modes):
            seq = pool[i * args.sequential:(i + 1) * args.sequential]
            conc = pool[len(modes) * args.sequential:][: args.requests]
            print(f"[{mode}] in-process vs HTTP, 1 at a time …", file=sys.stderr)
            pair = paired(retriever, base, seq, args.k, mode)
            print(f"[{mode}] HTTP, {args.concurrency} concurrent …", file=sys.stderr)
            many = asyncio.run(over_http(base, conc, args.k, mode, args.concurrency))
            res["modes"][mode] = {"in-process": pair["in-process"], "HTTP, 1 at a time": pair["HTTP, 1 at a time"],
                                  f"HTTP, {args.concurrency} concurrent": many}
            res.setdefault("overhead_ms", {})[mode] = pair["overhead_ms"]
            print(f"[{mode}] p50 {many['p50_ms']:.1f} ms, p99 {many['p99_ms']:.1f} ms, {many['rps']:.0f} req/s, "
                  f"{many['failures']} failures", file=sys.stderr)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    res["load_before"], res["load_after"] = load_before, [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    _plot(res, args.out / "serve.png")
    (args.out / "serve.md").write_text(_markdown(res))
    slim = {**res, "modes": {m: {k: {kk: vv for kk, vv in v.items() if kk != "latencies"} for k, v in runs.items()}
                             for m, runs in res["modes"].items()}}
    (args.out / "serve.json").write_text(json.dumps(slim, indent=2))
    print((args.out / "serve.md").read_text())
    failed = sum(r.get("failures", 0) for runs in res["modes"].values() for r in runs.values())
    if failed:
        raise SystemExit(f"{failed} requests failed")


if __name__ == "__main__":
    main()
