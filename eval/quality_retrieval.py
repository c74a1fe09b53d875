"""Retrieval quality on real data: nDCG@10 of BM25, dense, hybrid (defaults) and naive RRF.

Data sets (document-level relevance; a document scores what its best chunk scores):

- guidelines: the embedded guideline corpus (``corpora/guidelines``, built if missing) with our own clinical
  questions ``eval/data/guideline_queries.jsonl`` (graded relevance, split dev/test);
- pubmedqa: the 500 PQA-L abstracts of ``../shared/data/pubmedqa/pqal_dev.json`` as the corpus, each question
  as a query whose only relevant document is its own abstract (split dev/test by PMID).

``--tune`` runs the fusion grid on the dev splits (how the shipped ``FusionConfig`` defaults were chosen);
the report always shows the test splits with the defaults. Scores come from pytrec_eval.

    python eval/quality_retrieval.py [--tune] [--out eval/results/retrieval_quality.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medrag.config import ChunkConfig, FusionConfig, IndexConfig  # noqa: E402
from medrag.index import build_index  # noqa: E402
from medrag.retrieve import HybridRetriever, load_index  # noqa: E402
from medrag.retrieve.fusion import best_per_document  # noqa: E402

WORK = ROOT / "eval" / ".cache" / "quality"
SHARED = ROOT.parent / "shared" / "data"
FETCH = 50  # chunks retrieved per query before document aggregation
MEASURES = ("ndcg_cut_10", "recall_10", "recip_rank")

NAIVE_RRF = FusionConfig(method="rrf", weights=(1.0, 1.0), rrf_k=60, depth=100)


# ---------------------------------------------------------------------------------------------- data


def guideline_set() -> tuple[Path, list[dict[str, Any]]]:
    from medrag.ingest.guidelines import build_default_corpus

    corpus = Path(build_default_corpus(ROOT / "corpora" / "guidelines"))
    queries = [json.loads(line) for line in open(ROOT / "eval" / "data" / "guideline_queries.jsonl")]
    return corpus, queries


def pubmedqa_set() -> tuple[Path, list[dict[str, Any]]]:
    from medrag.ingest.chunking import Chunker
    from medrag.ingest.store import write_corpus
    from medrag.types import Document, Metadata, Section

    data = json.loads((SHARED / "pubmedqa" / "pqal_dev.json").read_text())
    out = WORK / "pubmedqa-corpus"
    if not (out / "manifest.json").is_file():
        chunker = Chunker(ChunkConfig())
        chunks = []
        for pmid, item in sorted(data.items()):
            sections = tuple(
                Section(label.title(), text) for label, text in zip(item["LABELS"], item["CONTEXTS"], strict=True)
            )
            year = int(item["YEAR"]) if str(item.get("YEAR", "")).isdigit() else None
            meta = Metadata(pmid=pmid, year=year, mesh=tuple(item.get("MESHES", ())))
            chunks.extend(chunker.chunk(Document(f"pubmed:{pmid}", "pubmed", "", sections, meta)))
        write_corpus(out, chunks, source="pubmedqa-pqal", parameters={"chunk": dataclasses.asdict(ChunkConfig())})
    queries = [
        {"id": pmid, "query": item["QUESTION"], "relevant": {f"pubmed:{pmid}": 1},
         "split": "dev" if i % 2 == 0 else "test"}
        for i, (pmid, item) in enumerate(sorted(data.items()))
    ]
    return out, queries


def index_for(name: str, corpus: Path) -> HybridRetriever:
    out = WORK / f"{name}-index"
    try:
        retriever = load_index(out)
        if _built(retriever.manifest.config) == _built(IndexConfig()):  # fusion is chosen at query time
            return retriever
    except Exception:  # noqa: BLE001 - any problem with a cached index means: rebuild it
        pass
    build_index([corpus], out, IndexConfig(), progress=False)
    return load_index(out)


def _built(config: IndexConfig) -> dict[str, Any]:
    """What an index build depends on: its config without the (query-time) fusion."""
    from medrag.config import config_to_dict

    return {k: v for k, v in config_to_dict(config).items() if k != "fusion"}


# -------------------------------------------------------------------------------------------- scoring


def run_for(retriever: HybridRetriever, queries: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Document-level TREC run: top chunks aggregated by document (max), cut to 10, rank-ordered scores."""
    rows_per_query = retriever.search_rows([q["query"] for q in queries], FETCH)
    doc_col = retriever.corpus.column("doc_id")
    run = {}
    for q, (rows, _scores) in zip(queries, rows_per_query, strict=True):
        docs = doc_col.take(rows).to_pylist() if len(rows) else []
        keep = best_per_document(docs, 10)
        run[q["id"]] = {docs[i]: float(10 - r) for r, i in enumerate(keep)}
    return run


def evaluate(run: dict[str, dict[str, float]], queries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    import pytrec_eval

    qrels = {q["id"]: {d: int(g) for d, g in q["relevant"].items()} for q in queries}
    for q in queries:
        run.setdefault(q["id"], {})
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES)).evaluate(run)
    means = {m: float(np.mean([per_query[q["id"]][m] for q in queries])) for m in MEASURES}
    return {"mean": means, "per_query": {q: v["ndcg_cut_10"] for q, v in per_query.items()}}


def score(retriever: HybridRetriever, queries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return evaluate(run_for(retriever, queries), queries)


def variants(base: HybridRetriever) -> dict[str, HybridRetriever]:
    return {
        "bm25": base.with_options(mode="bm25"),
        "dense": base.with_options(mode="dense"),
        "hybrid (defaults)": base.with_options(mode="hybrid", fusion=FusionConfig()),
        "naive RRF (k=60, equal weights)": base.with_options(mode="hybrid", fusion=NAIVE_RRF),
    }


def paired_bootstrap(a: dict[str, float], b: dict[str, float], n: int = 10_000, seed: int = 0) -> float:
    """One-sided p-value that mean(a - b) <= 0 by paired bootstrap over queries."""
    keys = sorted(a)
    diff = np.array([a[k] - b[k] for k in keys])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    return float((means <= 0).mean())


# ----------------------------------------------------------------------------------------------- grid


def grid() -> list[FusionConfig]:
    configs = []
    for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        for norm in ("minmax", "zscore"):
            for depth in (50, 200):
                configs.append(FusionConfig(method="weighted", weights=(w, round(1 - w, 2)),
                                            normalization=norm, depth=depth))
    for w in (1.0, 2.0):
        configs.append(FusionConfig(method="rrf", weights=(w, 1.0), rrf_k=60, depth=100))
    return configs


def tune(sets: dict[str, tuple[HybridRetriever, list[dict[str, Any]]]]) -> list[tuple[FusionConfig, dict[str, float]]]:
    rows = []
    for config in grid():
        result = {}
        for name, (base, queries) in sets.items():
            dev = [q for q in queries if q["split"] == "dev"]
            result[name] = score(base.with_options(mode="hybrid", fusion=config), dev)["mean"]["ndcg_cut_10"]
        rows.append((config, result))
    return rows


def _fusion_label(c: FusionConfig) -> str:
    if c.method == "rrf":
        return f"rrf k={c.rrf_k} w={c.weights[0]:g}:{c.weights[1]:g}"
    return f"weighted {c.weights[0]:g}/{c.weights[1]:g} {c.normalization} depth={c.depth}"


# --------------------------------------------------------------------------------------------- report


def report(results: dict[str, Any], tuning: list[Any] | None, seconds: float) -> str:
    lines = [
        "# Retrieval quality (nDCG@10, document level)",
        "",
        "Produced by `python eval/quality_retrieval.py" + (" --tune" if tuning else "") + f"` in {seconds:.0f} s "
        "(2 shared CPU cores). Dense = bundled all-MiniLM-L6-v2, FAISS Flat (exact). Hybrid = the shipped "
        f"`FusionConfig()` defaults: `{_fusion_label(FusionConfig())}`, chosen on the dev splits only. "
        "Per-query scores come from pytrec_eval; 'p' is a one-sided paired bootstrap p-value for "
        "hybrid > best single retriever on the same split.",
        "",
        "Data: **guidelines** = the embedded corpus (43 guidelines, 145 sections, chunked by `medrag corpus`) with "
        "169 clinical questions written for this project (`eval/data/guideline_queries.jsonl`; every section is "
        "the answer to at least one question; relevance 2 = answers it, 1 = partly), split 85 dev / 84 test at "
        "random (seeded). **pubmedqa** = the 500 PQA-L abstracts as the corpus, each question's own abstract as "
        "its only relevant document, split dev/test alternately by sorted PMID. Both sets are near the ceiling "
        "(the top document is usually right), so differences are a handful of queries; the per-query win/loss "
        "counts and p-values say how much to trust them.",
        "",
    ]
    for name, by_split in results.items():
        for split, res in by_split.items():
            n = res["n"]
            lines += [f"## {name} — {split} split ({n} queries)", "",
                      "| retriever | nDCG@10 | Recall@10 | MRR |", "|---|---:|---:|---:|"]
            for label, r in res["variants"].items():
                m = r["mean"]
                lines.append(f"| {label} | {m['ndcg_cut_10']:.4f} | {m['recall_10']:.4f} | {m['recip_rank']:.4f} |")
            lines += ["", res["verdict"], ""]
    if tuning:
        lines += ["## Fusion grid on the dev splits (nDCG@10)", "",
                  "| fusion | " + " | ".join(tuning[0][1]) + " | mean |", "|---|" + "---:|" * (len(tuning[0][1]) + 1)]
        for config, res in sorted(tuning, key=lambda t: -np.mean(list(t[1].values()))):
            vals = list(res.values())
            lines.append(f"| {_fusion_label(config)} | " + " | ".join(f"{v:.4f}" for v in vals)
                         + f" | {np.mean(vals):.4f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune", action="store_true", help="also run the fusion grid on the dev splits")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "retrieval_quality.md")
    args = parser.parse_args(argv)
    start = time.time()
    WORK.mkdir(parents=True, exist_ok=True)
    sets = {}
    for name, maker in (("guidelines", guideline_set), ("pubmedqa", pubmedqa_set)):
        if name == "pubmedqa" and not (SHARED / "pubmedqa" / "pqal_dev.json").is_file():
            print(f"skipping pubmedqa: {SHARED / 'pubmedqa'} not found", file=sys.stderr)
            continue
        corpus, queries = maker()
        sets[name] = (index_for(name, corpus), queries)
    tuning = tune(sets) if args.tune else None
    results: dict[str, Any] = {}
    for name, (base, queries) in sets.items():
        results[name] = {}
        for split in ("dev", "test"):
            subset = [q for q in queries if q["split"] == split]
            scored = {label: score(r, subset) for label, r in variants(base).items()}
            results[name][split] = {"n": len(subset), "variants": scored,
                                    "verdict": verdict(scored)}
    text = report(results, tuning, time.time() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


def verdict(scored: dict[str, Any]) -> str:
    hybrid = scored["hybrid (defaults)"]
    single = max(("bm25", "dense"), key=lambda k: scored[k]["mean"]["ndcg_cut_10"])
    h, s = hybrid["mean"]["ndcg_cut_10"], scored[single]["mean"]["ndcg_cut_10"]
    p = paired_bootstrap(hybrid["per_query"], scored[single]["per_query"])
    wins = sum(hybrid["per_query"][q] > scored[single]["per_query"][q] for q in hybrid["per_query"])
    losses = sum(hybrid["per_query"][q] < scored[single]["per_query"][q] for q in hybrid["per_query"])
    status = "holds" if h >= s else "DOES NOT hold"
    return (f"Hybrid ≥ best single ({single}): **{status}** — {h:.4f} vs {s:.4f} "
            f"(Δ {h - s:+.4f}; per query {wins} better / {losses} worse; p = {p:.3f}).")


if __name__ == "__main__":
    raise SystemExit(main())
