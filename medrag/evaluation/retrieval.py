"""Retrieval evaluation: one cached index per task, TREC runs, trec_eval metrics, results with provenance.

For each task::

    corpus.jsonl --ingest("jsonl")--> <cache>/corpora/<sha>/          (chunked Arrow corpus, doc ids verbatim)
                 --build_index-->     <cache>/indexes/<key>/          (key = corpus fingerprint + index config)
    queries (optionally expanded) --batch_search--> chunk hits --max per doc--> top ``depth`` documents
    <out>/<system>/<task>/run.trec, per_query.json, results.json, hits-<fp>.jsonl (resumable per-query cache)

``system`` names the retrieval mode and expansion (``hybrid``, ``bm25+hyde``, …). Results carry the full
evaluation and index configs, corpus/index fingerprints and library versions; ``summary.json`` in ``<out>``
collects every task of every system for ``medrag eval report``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import FusionConfig, IndexConfig, IngestConfig, LoopConfig, RetrievalEvalConfig, config_to_dict
from ..manifest import MANIFEST_NAME, atomic_write_json, fingerprint
from ..types import Hit
from .data import RetrievalTask
from .expansion import compose_query, expand_queries, load_expansions, reason_expansion
from .metrics import evaluate_run
from .per_query import worst_queries
from .records import ItemCache, config_fingerprint, provenance
from .trec import write_qrels, write_run

__all__ = ["system_name", "aggregate_hits", "prepare_index", "evaluate_task", "RetrievalOutcome", "write_summary"]

log = logging.getLogger(__name__)
_SEARCH_BATCH = 32


@dataclass(frozen=True)
class RetrievalOutcome:
    task: str
    system: str
    aggregate: dict[str, float]
    num_queries: int
    out_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "system": self.system, "num_queries": self.num_queries,
                "metrics": self.aggregate, "dir": str(self.out_dir)}


def system_name(config: RetrievalEvalConfig) -> str:
    """``<mode>``, or ``<mode>+<expansion>@<model>`` (``@precomputed`` when passages came from a file)."""
    if not config.expand:
        return config.mode
    return f"{config.mode}+{config.expand}@{'precomputed' if config.expansions else _llm_tag(config.llm)}"


def _llm_tag(spec: str | None) -> str:
    """A short folder-safe name for an LLM spec (``default``, a GGUF's stem, a served model's name)."""
    if not spec or spec.strip() == "default":
        return "default"
    backend, _, rest = spec.partition(":")
    if backend == "openai":
        rest = rest.partition("#")[2] or "openai"
    return _safe(Path(rest.rstrip("/")).stem or backend)


def aggregate_hits(hits: Sequence[Hit], depth: int) -> dict[str, float]:
    """Chunk hits -> the top ``depth`` documents, each scored by its best chunk (hits are best first)."""
    best: dict[str, float] = {}
    for hit in hits:
        if hit.doc_id not in best or hit.score > best[hit.doc_id]:
            best[hit.doc_id] = float(hit.score)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:depth]
    return dict(ranked)


def prepare_index(task: RetrievalTask, cache_dir: Path, index_config: IndexConfig, *, progress: bool = True) -> Path:
    """Ingest the task's corpus and build its index, each once per content + config (cached in ``cache_dir``)."""
    from ..index import build_index  # deferred: pyarrow (medrag.index)
    from ..ingest import ingest  # deferred: pyarrow (medrag.ingest.pipeline)

    ingest_config = IngestConfig(source="jsonl")
    corpus_key = fingerprint({"corpus": task.corpus_sha256, "ingest": config_to_dict(ingest_config)})[:16]
    corpus_dir = cache_dir / "corpora" / f"{_safe(task.name)}-{corpus_key}"
    if not (corpus_dir / MANIFEST_NAME).is_file():
        log.info("%s: ingesting %s", task.name, task.corpus_path)
        ingest("jsonl", [task.corpus_path], corpus_dir, ingest_config, progress=progress)
    corpus_fp = json.loads((corpus_dir / MANIFEST_NAME).read_text(encoding="utf-8"))["fingerprint"]
    # fusion is applied at query time (``load_index(fusion=…)``), so it is not part of what is built and cached
    built = config_to_dict(replace(index_config, fusion=FusionConfig()))
    index_key = fingerprint({"corpus": corpus_fp, "index": {k: v for k, v in built.items() if k != "fusion"}})[:16]
    index_dir = cache_dir / "indexes" / f"{_safe(task.name)}-{index_key}"
    if not (index_dir / MANIFEST_NAME).is_file():
        log.info("%s: building index %s", task.name, index_dir)
        build_index([corpus_dir], index_dir, index_config, progress=progress)
    return index_dir


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _index_config_for(mode: str, index_config: IndexConfig | None) -> IndexConfig:
    cfg = index_config or IndexConfig()
    return replace(cfg, dense=False) if mode == "bm25" else replace(cfg, dense=True)


def _run_queries(retriever: Any, queries: Mapping[str, str], config: RetrievalEvalConfig, cache: ItemCache,
                 bar: Callable[[int], None]) -> tuple[dict[str, dict[str, float]], int]:
    """(the run, how many queries were searched now rather than read from the cache)."""
    todo = [q for q in sorted(queries) if q not in cache]
    bar(len(queries) - len(todo))
    k = config.depth * config.chunk_oversample
    for start in range(0, len(todo), _SEARCH_BATCH):
        part = todo[start:start + _SEARCH_BATCH]
        for qid, hits in zip(part, retriever.batch_search([queries[q] for q in part], k=k), strict=True):
            cache.put(qid, aggregate_hits(hits, config.depth))
        bar(len(part))
    return {q: cache.get(q) for q in queries}, len(todo)


def _bar(total: int, desc: str, enabled: bool) -> Any:
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="query", file=sys.stderr, disable=not enabled, leave=False)


def evaluate_task(task: RetrievalTask, config: RetrievalEvalConfig, out: Path, *, cache_dir: Path | None = None,
                  index_config: IndexConfig | None = None, llm: Any = None, progress: bool = True,
                  retriever: Any = None, loop_config: Any = None, name: str | None = None) -> RetrievalOutcome:
    """Evaluate one task end to end (see the module docstring). ``retriever`` skips index preparation;
    ``name`` overrides the system name (the folder under ``out``)."""
    t0 = time.perf_counter()
    system = name or system_name(config)
    task_dir = out / system / _safe(task.name)
    cache_dir = cache_dir or out / ".cache"
    index_cfg = _index_config_for(config.mode, index_config)
    index_dir = None
    clock = {"index": 0.0}
    if retriever is None:
        from ..retrieve.load import load_index  # deferred: pyarrow (via medrag.retrieve.load)

        index_dir = prepare_index(task, cache_dir, index_cfg, progress=progress)
        retriever = load_index(index_dir, mode=config.mode, fusion=index_cfg.fusion)
        clock["index"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    queries, expansions = _expanded(task, config, cache_dir, retriever, llm, loop_config, progress)
    clock["expansion"] = time.perf_counter() - t1
    eval_dict = config_to_dict(config)
    run_key = config_fingerprint({"eval": eval_dict, "index": config_to_dict(index_cfg),
                                  "corpus": task.corpus_sha256, "queries": fingerprint(queries)})
    bar = _bar(len(queries), f"{task.name} {system}", progress)
    t2 = time.perf_counter()
    run, searched = _run_queries(retriever, queries, config, ItemCache(task_dir / f"hits-{run_key}.jsonl"), bar.update)
    clock["search"] = time.perf_counter() - t2
    bar.close()
    scores = evaluate_run(task.qrels, run, ignore_identical_ids=config.ignore_identical_ids)
    write_run(task_dir / "run.trec", run, tag=f"medrag-{_safe(system)}")
    write_qrels(task_dir / "qrels.txt", task.qrels)
    atomic_write_json(task_dir / "per_query.json", scores.per_query)
    atomic_write_json(task_dir / "worst.json", worst_queries(
        scores.per_query, run, task.qrels, task.queries, title=_titles(retriever, run, scores.per_query)))
    if expansions:
        atomic_write_json(task_dir / "expansions.json", expansions)
    results = {
        "kind": "retrieval",
        "task": task.describe(),
        "system": system,
        "metrics": scores.aggregate,
        "num_queries": scores.num_queries,
        "seconds": round(time.perf_counter() - t0, 2),
        "timing": {**{k: round(v, 2) for k, v in clock.items()}, "queries_searched": searched},
        "files": {"run": "run.trec", "qrels": "qrels.txt", "per_query": "per_query.json", "worst": "worst.json"},
        **provenance(eval_dict, index_config=config_to_dict(index_cfg), index=_index_facts(index_dir, retriever),
                     llm=_llm_name(llm) if config.expand and not config.expansions else None,
                     loop_config=_loop_dict(loop_config) if config.expand == "reason" else None),
    }
    atomic_write_json(task_dir / "results.json", results)
    return RetrievalOutcome(task.name, system, scores.aggregate, scores.num_queries, task_dir)


def _expanded(task: RetrievalTask, config: RetrievalEvalConfig, cache_dir: Path, retriever: Any, llm: Any,
              loop_config: Any, progress: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(query id -> text to search with, query id -> expansion); the task's own queries without ``expand``."""
    if not config.expand:
        return dict(task.queries), {}
    bar = _bar(len(task.queries), f"{task.name} {config.expand}", progress)
    precomputed = load_expansions(config.expansions) if config.expansions else None
    is_reason = config.expand == "reason"
    expansions = expand_queries(
        task.queries, config.expand, cache_dir / "expansions" / _safe(task.name), llm=llm,
        max_tokens=config.expansion_max_tokens, precomputed=precomputed,
        reason=reason_expansion(retriever, llm, loop_config) if is_reason and llm else None,
        progress=bar.update, key_extra={"loop": _loop_dict(loop_config)} if is_reason else None,
    )
    bar.close()
    queries = {q: compose_query(config.expand, text, expansions[q], config.query2doc_repeat)
               for q, text in task.queries.items()}
    return queries, expansions


def _titles(retriever: Any, run: Mapping[str, Mapping[str, float]],
            per_query: Mapping[str, Any], n: int = 20, hits: int = 3) -> Callable[[str], str] | None:
    """Document id -> title (or the start of its text) for the top hits of the ``n`` worst queries, from the
    retriever's corpus (None without one)."""
    corpus = getattr(retriever, "corpus", None)
    if corpus is None:
        return None
    worst = sorted(per_query, key=lambda q: (per_query[q]["ndcg@10"], q))[:n]
    wanted = {d for q in worst for d, _ in sorted(run.get(q, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:hits]}
    titles: dict[str, str] = {}
    for row, doc in enumerate(corpus.column("doc_id").to_pylist()):
        if doc in wanted and doc not in titles:
            chunk = corpus.chunk(row)
            titles[doc] = chunk.title or " ".join(chunk.text.split())[:80]
    return lambda d: titles.get(d, "")


def _loop_dict(loop_config: Any) -> dict[str, Any]:
    return config_to_dict(loop_config or LoopConfig())


def _llm_name(llm: Any) -> str | None:
    return getattr(llm, "name", None) if llm is not None else None


def _index_facts(index_dir: Path | None, retriever: Any) -> dict[str, Any]:
    if index_dir is None:
        return {"path": None, "retriever": type(retriever).__name__}
    manifest = json.loads((index_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    return {"path": str(index_dir), "fingerprint": manifest.get("fingerprint"), "rows": manifest.get("rows")}


def write_summary(out: Path) -> dict[str, Any]:
    """Collect ``<out>/*/*/results.json`` into ``<out>/summary.json`` (system -> task -> metrics)."""
    table: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob("*/*/results.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        if res.get("kind") != "retrieval":
            continue
        table.setdefault(res["system"], {})[res["task"]["name"]] = {
            "metrics": res["metrics"], "num_queries": res["num_queries"],
        }
    summary = {"kind": "retrieval-summary", "systems": table}
    atomic_write_json(out / "summary.json", summary)
    return summary
