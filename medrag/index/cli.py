"""``medrag index build|info|verify`` and ``medrag search``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from ..cli_common import emit_json, json_option, stderr_console, stdout_console
from ..config import BM25Config, FaissConfig, IndexConfig
from ..errors import ConfigError
from ..manifest import MANIFEST_NAME
from . import DEFAULT_CORPUS, DEFAULT_INDEX

__all__ = ["index", "search"]


@click.group()
def index() -> None:
    """Build and inspect hybrid BM25 + dense (FAISS) indexes.

    \b
      medrag index build                       # embedded guideline corpus -> indexes/default
      medrag index build --corpus corpora/pubmed --out indexes/pubmed --faiss "IVF4096,PQ64"
      medrag index build --corpus corpora/pubmed --engine ray --address auto --faiss "OPQ64,IVF65536,PQ64" --faiss-shards 4
      medrag index info indexes/default
      medrag index verify indexes/default      # re-hash every file
    """


def _weights(value: str) -> tuple[float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError as exc:
        raise ConfigError(f"--weights must be two numbers 'BM25,DENSE' (e.g. 0.7,0.3), got {value!r}") from exc
    if len(parts) != 2:
        raise ConfigError(f"--weights must be two numbers 'BM25,DENSE' (e.g. 0.7,0.3), got {value!r}")
    return parts  # type: ignore[return-value]


def _build_config(opts: dict[str, Any]) -> IndexConfig:
    base = IndexConfig()
    encoder = dataclasses.replace(
        base.encoder,
        model=opts["dense_model"],
        query_model=opts["query_model"],
        query_prefix=opts["query_prefix"],
        passage_prefix=opts["passage_prefix"],
        device=opts["device"],
        batch_size=opts["batch_size"] or base.encoder.batch_size,
        max_seq_length=opts["max_seq_length"] or base.encoder.max_seq_length,
        backend=opts["backend"],
        onnx_model=opts["onnx_model"],
    )
    bm25 = BM25Config(stemmer=None) if opts["no_stem"] else BM25Config()
    faiss = FaissConfig(factory=opts["faiss"], device=opts["device"], shards=opts["faiss_shards"],
                        nprobe=opts["nprobe"] or FaissConfig.nprobe, rerank=opts["rerank"],
                        train_sample=opts["train_sample"] or FaissConfig.train_sample)
    fusion = base.fusion
    if opts["fusion"] or opts["weights"]:
        fusion = dataclasses.replace(
            fusion,
            method=opts["fusion"] or fusion.method,
            weights=_weights(opts["weights"]) if opts["weights"] else fusion.weights,
        )
    return IndexConfig(bm25=bm25, encoder=encoder, faiss=faiss, fusion=fusion, dense=not opts["no_dense"])


def _default_corpus(show: bool) -> Path:
    if (DEFAULT_CORPUS / MANIFEST_NAME).is_file():
        return DEFAULT_CORPUS
    from ..ingest.guidelines import build_default_corpus

    if show:
        stderr_console().print(f"Building the embedded guideline corpus into {DEFAULT_CORPUS} …")
    return Path(build_default_corpus(DEFAULT_CORPUS))


@index.command("build")
@click.option("--corpus", "corpora", multiple=True, type=click.Path(path_type=Path),
              help=f"Corpus directory (repeatable; rows are numbered in the order given). Default: {DEFAULT_CORPUS}, "
                   "built from the embedded guidelines when missing.")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_INDEX, show_default=True,
              help="Index directory to write.")
@click.option("--dense-model", default=None, help="Passage encoder: local folder or hub name (default: bundled all-MiniLM-L6-v2).")
@click.option("--query-model", default=None, help="Separate query encoder (asymmetric models such as MedCPT).")
@click.option("--query-prefix", default="", help="Text prepended to queries (e5: 'query: ').")
@click.option("--passage-prefix", default="", help="Text prepended to passages (e5: 'passage: ').")
@click.option("--faiss", default="Flat", show_default=True, help="FAISS factory string (Flat, HNSW32, IVF4096,PQ64 …).")
@click.option("--faiss-shards", type=click.IntRange(min=1), default=1, show_default=True,
              help="Split the vectors into N FAISS indexes searched together (one quantizer trained once; "
                   "with --device cuda, one per GPU).")
@click.option("--nprobe", type=click.IntRange(min=1), default=None, help="IVF lists probed per query (default 32).")
@click.option("--rerank", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fetch k*N candidates from a compressed index (IVF-PQ …) and re-score them exactly from the "
                   "memory-mapped vectors (0 = off).")
@click.option("--train-sample", type=click.IntRange(min=1), default=None,
              help="Vectors IVF/PQ/OPQ are trained on (seeded sample; default 100,000).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N] (encoder and FAISS).")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="Encoder runtime: sentence-transformers or onnxruntime.")
@click.option("--onnx-model", default=None, help="ONNX model file for --backend onnx (default: bundled int8 MiniLM).")
@click.option("--batch-size", type=int, default=None, help="Encoding batch size (default 64).")
@click.option("--max-seq-length", type=int, default=None, help="Encoder truncation length in tokens (default 256).")
@click.option("--vectors", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Precomputed passage embeddings (.npy, one row per corpus chunk) instead of encoding; "
                   "--dense-model must name the matching query encoder.")
@click.option("--no-dense", is_flag=True, help="BM25 only (no encoder, no FAISS).")
@click.option("--no-stem", is_flag=True, help="Disable BM25 stemming.")
@click.option("--fusion", type=click.Choice(["weighted", "rrf"]), default=None, help="Default fusion method stored in the index.")
@click.option("--weights", default=None, help="Default fusion weights 'BM25,DENSE' (e.g. 0.7,0.3).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: BM25 parts and encoding run as Ray Data stages (same index as local).")
@click.option("--address", default=None,
              help="Ray cluster to join ('auto', 'ray://host:10001'); default: start a local Ray instance.")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs of a local Ray instance.")
@click.option("--object-store-mb", type=click.IntRange(min=80), default=None,
              help="Object store of a local Ray instance in MB (default: Ray's, 30% of RAM).")
@click.option("--encode-actors", type=click.IntRange(min=1), default=None,
              help="Ray encoder actors (default: one per GPU, or one per 2 CPUs).")
@click.option("--bm25-part-rows", type=click.IntRange(min=1), default=1_048_576, show_default=True,
              help="BM25 is built in parts of this many rows, merged into one memory-mapped index.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@json_option
def build_cmd(corpora: tuple[Path, ...], out: Path, vectors: Path | None, quiet: bool, as_json: bool,
              engine: str, address: str | None, num_cpus: int | None, object_store_mb: int | None,
              encode_actors: int | None, bm25_part_rows: int, **opts: Any) -> None:
    """Build a hybrid index (BM25 + dense vectors + FAISS) from one or more corpora.

    Resumable: rerunning after an interruption skips the encoding shards already written.
    """
    from ..config import ScaleConfig
    from .build import build_index
    from .manifest import read_index_manifest

    config = _build_config(opts)
    scale = ScaleConfig(engine=engine, address=address, num_cpus=num_cpus, encode_actors=encode_actors,
                        bm25_part_rows=bm25_part_rows,
                        object_store_memory=object_store_mb * 2**20 if object_store_mb else None)
    show = not quiet and sys.stderr.isatty()
    paths = list(corpora) if corpora else [_default_corpus(not quiet)]
    build_index(paths, out, config, progress=show, vectors=vectors, scale=scale)
    manifest = read_index_manifest(out)
    if as_json:
        emit_json(_summary(out, manifest))
    else:
        click.echo(f"Index written to {out} ({manifest['rows']} chunks; modes: {', '.join(manifest['modes'])})")


def _summary(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    dense = manifest.get("dense") or {}
    size = sum(int(f["size"]) for f in manifest.get("files", {}).values())
    return {
        "path": str(path),
        "medrag_version": manifest.get("medrag_version"),
        "rows": manifest.get("rows"),
        "modes": manifest.get("modes"),
        "corpora": manifest.get("corpora"),
        "bm25": {"tokenizer": manifest["bm25"]["tokenizer"], "stats": manifest["bm25"]["stats"],
                 "method": manifest["bm25"]["params"]["method"]},
        "dense": {
            "model": dense.get("encoder", {}).get("model") or "all-MiniLM-L6-v2 (bundled)",
            "dim": dense.get("dim"),
            "metric": dense.get("metric"),
            "faiss": dense.get("faiss", {}).get("factory"),
            "faiss_shards": dense.get("faiss", {}).get("shards", 1),
            "faiss_bytes_per_vector": dense.get("faiss", {}).get("bytes_per_vector"),
        } if dense else None,
        "build": manifest.get("build"),
        "fusion": manifest.get("fusion"),
        "bytes": size,
        "fingerprint": manifest.get("fingerprint"),
    }


@index.command("info")
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_INDEX, required=False)
@json_option
def info_cmd(path: Path, as_json: bool) -> None:
    """Show what an index was built from and with (reads the manifest only)."""
    from .manifest import read_index_manifest

    summary = _summary(path, read_index_manifest(path))
    if as_json:
        emit_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"Index {path}", show_header=False)
    table.add_row("chunks", str(summary["rows"]))
    table.add_row("modes", ", ".join(summary["modes"]))
    for ref in summary["corpora"]:
        table.add_row("corpus", f"{ref['path']} ({ref['rows']} rows, {ref['fingerprint'][:12]}…)")
    stats = summary["bm25"]["stats"]
    table.add_row("bm25", f"{summary['bm25']['method']}; vocabulary {stats['vocabulary']}; "
                          f"stemmer {summary['bm25']['tokenizer']['stemmer']}")
    if summary["dense"]:
        d = summary["dense"]
        shards = f" x {d['faiss_shards']} shards" if d["faiss_shards"] > 1 else ""
        per_vec = f" ({d['faiss_bytes_per_vector']} B/vector)" if d["faiss_bytes_per_vector"] else ""
        table.add_row("dense", f"{d['model']}; dim {d['dim']}; {d['metric']}; faiss {d['faiss']}{shards}{per_vec}")
    f = summary["fusion"]
    table.add_row("fusion", f"{f['method']} weights {f['weights']} ({f['normalization']}, depth {f['depth']})")
    table.add_row("size", f"{summary['bytes'] / 1e6:.1f} MB")
    stdout_console().print(table)


@index.command("verify")
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_INDEX, required=False)
@json_option
def verify_cmd(path: Path, as_json: bool) -> None:
    """Re-hash every index file and corpus shard against the manifests."""
    from ..retrieve.hybrid import load_index

    retriever = load_index(path, mode="bm25", verify=True)
    n = len(retriever.manifest.get("files", {}))
    if as_json:
        emit_json({"path": str(path), "ok": True, "files": n, "rows": retriever.corpus.num_rows})
    else:
        click.echo(f"OK: {path}: {n} index files and {len(retriever.corpus.paths)} corpus verified")


def _filters(source: tuple[str, ...], year_from: int | None, year_to: int | None,
             doc_ids: tuple[str, ...]) -> dict[str, Any] | None:
    filters: dict[str, Any] = {}
    if source:
        filters["source"] = list(source)
    if year_from is not None or year_to is not None:
        filters["year"] = (year_from, year_to)
    if doc_ids:
        filters["doc_ids"] = list(doc_ids)
    return filters or None


@click.command("search")
@click.argument("query")
@click.option("--index", "index_path", type=click.Path(path_type=Path), default=DEFAULT_INDEX, show_default=True,
              help="Index directory.")
@click.option("-k", "--k", "k", type=int, default=10, show_default=True, help="Number of hits.")
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True,
              help="hybrid = BM25 and dense fused with the index's default fusion; or one side alone.")
@click.option("--source", multiple=True, help="Only chunks from this source (repeatable).")
@click.option("--year-from", type=int, default=None, help="Only chunks published in or after this year.")
@click.option("--year-to", type=int, default=None, help="Only chunks published in or before this year.")
@click.option("--doc-id", "doc_ids", multiple=True, help="Only chunks of this document (repeatable).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N] for the query encoder and FAISS.")
@json_option
def search(query: str, index_path: Path, k: int, mode: str, source: tuple[str, ...], year_from: int | None,
           year_to: int | None, doc_ids: tuple[str, ...], device: str, as_json: bool) -> None:
    """Search an index (hybrid, bm25 or dense) and show the top hits."""
    from ..retrieve.base import check_k, check_query
    from ..retrieve.hybrid import load_index

    query, k = check_query(query), check_k(k)
    retriever = load_index(index_path, mode=mode, device=device)
    hits = retriever.search(query, k=k, filters=_filters(source, year_from, year_to, doc_ids))
    if as_json:
        emit_json({"query": query, "index": str(index_path), "mode": mode, "hits": [h.to_dict() for h in hits]})
        return
    _show_hits(query, hits)


def _show_hits(query: str, hits: list[Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(query), show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("document", overflow="fold")
    table.add_column("text", overflow="fold")
    for h in hits:
        text = " ".join(h.text.split())
        snippet = text if len(text) <= 300 else text[:297] + "…"
        where = Text.assemble((h.title, "bold"), "\n", h.section, "\n", (h.chunk_id, "dim"))
        table.add_row(str(h.rank), f"{h.score:.3f}", where, Text(snippet))
    if not hits:
        stdout_console().print("No hits.")
        return
    stdout_console().print(table)
