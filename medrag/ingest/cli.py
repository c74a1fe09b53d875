"""``medrag corpus …``: ingest sources into Arrow corpora, inspect and verify them, download raw data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..cli_common import emit_json, json_option
from ..config import ChunkConfig, IngestConfig, ScaleConfig
from ..errors import InputError
from . import download as dl
from .sources import SOURCES, get_source

__all__ = ["corpus"]


@click.group("corpus", context_settings={"help_option_names": ["-h", "--help"]})
def corpus() -> None:
    """Ingest PubMed, PMC/StatPearls, textbooks, guidelines and BEIR/R2MED jsonl into Arrow corpora.

    \b
    Examples:
      medrag corpus ingest guidelines --out corpora/guidelines      # embedded default, offline
      medrag corpus ingest pubmed -i pubmed25n0001.xml.gz -i pubmed25n0002.xml.gz --out corpora/pubmed
      medrag corpus ingest pmc -i articles/ --out corpora/statpearls --workers 2
      medrag corpus info corpora/pubmed --verify
      medrag corpus download pubmed --out raw/pubmed --files 1-3
    """


@corpus.command("sources")
@json_option
def sources_cmd(as_json: bool) -> None:
    """List the source parsers `ingest` knows."""
    rows = [{"source": s.name, "inputs": s.description} for s in SOURCES.values()]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['source']:<11} {row['inputs']}")


@corpus.command("ingest")
@click.argument("source")
@click.argument("more_inputs", nargs=-1, type=click.Path(path_type=Path), metavar="[INPUT]...")
@click.option("-i", "--input", "inputs", multiple=True, type=click.Path(path_type=Path),
              help="Input file or folder (repeatable, or several after one -i: `-i a.nxml b.nxml`; order matters "
                   "for PubMed updates). `guidelines` without --input ingests the embedded open-medicine guidelines.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Corpus directory to write (default: corpora/<source>).")
@click.option("-w", "--workers", type=int, default=1, show_default=True,
              help="Parse input files in this many processes.")
@click.option("--max-tokens", type=int, default=256, show_default=True, help="Chunk size limit in tokens.")
@click.option("--overlap-tokens", type=int, default=32, show_default=True,
              help="Tokens of whole sentences repeated between consecutive chunks of a long section.")
@click.option("--tokenizer", type=str, default=None,
              help="tokenizer.json (or a folder holding one) to count tokens (default: all-MiniLM-L6-v2's).")
@click.option("--shard-rows", type=int, default=100_000, show_default=True, help="Rows per Arrow shard.")
@click.option("--max-record-mb", type=float, default=16.0, show_default=True,
              help="Skip (as record_too_large) any jsonl line or text file larger than this many MiB.")
@click.option("--include-tables", is_flag=True, help="pmc: also ingest tables (as text rows).")
@click.option("--include-captions", is_flag=True, help="pmc: also ingest figure captions.")
@click.option("--restart", is_flag=True, help="Discard earlier work in --out instead of resuming.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: parse and chunk the input units as Ray Data tasks (same corpus as local).")
@click.option("--address", default=None,
              help="Ray cluster to join ('auto', 'ray://host:10001'); default: start a local Ray instance.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@json_option
def ingest_cmd(source: str, more_inputs: tuple[Path, ...], inputs: tuple[Path, ...], out: Path | None,
               workers: int, max_tokens: int, overlap_tokens: int, tokenizer: str | None, shard_rows: int,
               max_record_mb: float, include_tables: bool, include_captions: bool, restart: bool, engine: str,
               address: str | None, quiet: bool, as_json: bool) -> None:
    """Ingest SOURCE inputs into a corpus directory (resumable: re-run to continue after an interruption).

    SOURCE is one of: pubmed, pmc, textbooks, guidelines, jsonl (see `medrag corpus sources`).
    Bad records are skipped and counted by reason, never fatal; a run that yields no document from its
    inputs (wrong SOURCE for the files?) exits non-zero.
    """
    from .pipeline import ingest  # deferred: pyarrow (medrag.ingest.pipeline)

    get_source(source)
    if more_inputs and len(inputs) > 1:
        raise click.UsageError("give inputs as repeated -i or as several files after one -i, not both "
                               "(their order matters)")
    inputs = inputs + more_inputs
    out = out or Path("corpora") / source
    if not _utf8(str(out)):
        raise InputError(f"--out {str(out).encode('utf-8', 'backslashreplace').decode()}: the corpus path must be "
                         "valid UTF-8 (Arrow cannot write other names)")
    config = IngestConfig(
        source=source,
        chunk=ChunkConfig(max_tokens=max_tokens, overlap_tokens=overlap_tokens, tokenizer=tokenizer),
        workers=workers,
        shard_rows=shard_rows,
        include_tables=include_tables,
        include_captions=include_captions,
        max_record_bytes=int(max_record_mb * (1 << 20)),
    )
    report = ingest(source, list(inputs), out, config,
                    progress=not quiet and not as_json, resume=not restart,
                    scale=ScaleConfig(engine=engine, address=address))
    check_not_empty(report.to_dict())
    if as_json:
        emit_json(report.to_dict())
        return
    _print_report(report.to_dict())


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_not_empty(r: dict[str, Any]) -> None:
    """An InputError when a run produced no document although its inputs held records (all skipped)."""
    skipped = r["skipped"]
    if r["documents"] == 0 and r["chunks"] == 0 and r["deleted"] == 0 and r["inputs"]:
        detail = ", ".join(f"{k} {v:,}" for k, v in sorted(skipped.items())) or "no record found"
        raise InputError(
            f"{r['source']}: no document ingested from {r['inputs']} input file(s) (skipped: {detail}); "
            f"are these {r['source']} files? see `medrag corpus sources`"
        )


def _print_report(r: dict[str, Any]) -> None:
    click.echo(
        f"{r['source']}: {r['documents']:,} documents -> {r['chunks']:,} chunks in {r['shards']} shard(s) "
        f"from {r['inputs']} input file(s) ({r['units_reused']}/{r['units']} units reused) in {r['seconds']:.1f}s"
    )
    if r["replaced"] or r["deleted"]:
        click.echo(f"  replaced by newer versions: {r['replaced']:,}   deleted: {r['deleted']:,}")
    skipped = r["skipped"]
    if skipped:
        total = sum(skipped.values())
        detail = ", ".join(f"{k} {v:,}" for k, v in sorted(skipped.items()))
        click.echo(f"  skipped {total:,}: {detail}")
    else:
        click.echo("  skipped: none")
    click.echo(f"  corpus: {r['out']}  fingerprint {r['fingerprint'][:16]}")


@corpus.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--verify", is_flag=True, help="Also check every shard's sha256, row count and schema.")
@json_option
def info_cmd(path: Path, verify: bool, as_json: bool) -> None:
    """Show a corpus: source, totals, skip reasons, shards, fingerprint, build parameters."""
    from .info import corpus_info  # deferred: pyarrow (medrag.ingest.info)

    info = corpus_info(path, verify=verify)
    if as_json:
        emit_json(info)
        return
    _print_info(info)


def _print_info(info: dict[str, Any]) -> None:
    t = info["totals"]
    click.echo(f"corpus     {info['path']}")
    click.echo(f"source     {info['source']}   (format v{info['format_version']}, medrag {info['medrag_version']})")
    click.echo(f"documents  {t.get('documents', 0):,}")
    click.echo(f"chunks     {t.get('chunks', 0):,}")
    if t.get("replaced") or t.get("deleted"):
        click.echo(f"replaced   {t.get('replaced', 0):,}   deleted {t.get('deleted', 0):,}")
    skipped = t.get("skipped", {})
    click.echo("skipped    " + (", ".join(f"{k} {v:,}" for k, v in sorted(skipped.items())) or "none"))
    click.echo(f"inputs     {t.get('input_files', len(info['inputs']))} file(s) in {t.get('units', '?')} unit(s)")
    click.echo(f"shards     {len(info['shards'])}  ({info['bytes'] / 1e6:,.1f} MB)")
    click.echo(f"fingerprint {info['fingerprint']}")
    p = info["parameters"]
    chunk = p.get("chunk", {})
    click.echo(
        f"parameters max_tokens={chunk.get('max_tokens')} overlap_tokens={chunk.get('overlap_tokens')} "
        f"shard_rows={p.get('shard_rows')} tables={p.get('include_tables')} captions={p.get('include_captions')}"
    )
    if "verified" in info:
        click.echo("verified   ok (every shard's sha256, rows and schema match the manifest)")


@corpus.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
def verify_cmd(path: Path, as_json: bool) -> None:
    """Check a corpus: every shard present, sha256, row counts and schema as in its manifest."""
    from .info import corpus_info  # deferred: pyarrow (medrag.ingest.info)

    info = corpus_info(path, verify=True)
    if as_json:
        emit_json({"path": info["path"], "verified": True, "shards": len(info["shards"]),
                   "chunks": info["totals"]["chunks"], "fingerprint": info["fingerprint"]})
        return
    click.echo(f"{path}: ok ({len(info['shards'])} shards, {info['totals']['chunks']:,} chunks verified)")


@corpus.command("download")
@click.argument("what", type=click.Choice(["pubmed", "textbooks", "statpearls"]))
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Folder to download into (default: raw/<what>).")
@click.option("--files", default=None,
              help="pubmed: baseline file numbers, e.g. 1-3,7 or 'all' (default: all; ~1,300 files, ~40 GB).")
@click.option("--updates", is_flag=True, help="pubmed: also download every daily update file (ingest them after).")
@click.option("--base-url", default=None, help="pubmed: mirror root holding baseline/ and updatefiles/ "
              "(default https://ftp.ncbi.nlm.nih.gov/pubmed/); statpearls --from ncbi: archive URL.")
@click.option("--prefix", default=None,
              help="pubmed: file name prefix such as pubmed25n (default: the newest year in the listing).")
@click.option("--from", "from_", type=click.Choice(["hub", "ncbi"]), default="hub", show_default=True,
              help="statpearls: MedRAG's chunks on the Hugging Face hub, or NCBI's .nxml archive.")
@click.option("--sha256", default=None, metavar="HEX",
              help="statpearls --from ncbi: expected sha256 of the archive (default: the first download's "
                   "size and sha256 are recorded and checked on every later run).")
@click.option("--retries", type=int, default=3, show_default=True, help="Retries per file (transfers resume).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@json_option
def download_cmd(what: str, out: Path | None, files: str | None, updates: bool, base_url: str | None,
                 prefix: str | None, from_: str, sha256: str | None, retries: int, quiet: bool,
                 as_json: bool) -> None:
    """Download raw corpora (needs internet): PubMed XML with md5 checks and resume, MedRAG textbooks,
    StatPearls. Then ingest them with `medrag corpus ingest`.

    \b
      medrag corpus download pubmed --out raw/pubmed --files 1-3
      medrag corpus download textbooks --out raw/textbooks
      medrag corpus download statpearls --from ncbi --out raw/statpearls
    """
    out = out or Path("raw") / what
    progress = not quiet and not as_json
    if what == "pubmed":
        paths = dl.download_pubmed(out, files, updates=updates, base_url=base_url or dl.PUBMED_BASE_URL,
                                   prefix=prefix, retries=retries, progress=progress)
        source, inputs, hint = "pubmed", paths, [out]  # a folder ingests in name order: baseline, then updates
    elif what == "statpearls" and from_ == "ncbi":
        folder = dl.download_statpearls_archive(out, url=base_url or dl.STATPEARLS_URL, sha256=sha256,
                                                retries=retries, progress=progress)
        source, inputs, hint = "pmc", [folder], [folder]
    else:
        inputs = dl.download_hub_corpus(what, out)
        source, hint = "textbooks", [out / "chunk"]  # MedRAG chunk jsonl is read by the textbooks parser
    if as_json:
        emit_json({"what": what, "out": str(out), "files": [str(p) for p in inputs], "ingest_source": source})
        return
    click.echo(f"{what}: {len(inputs)} file(s) ready in {out}")
    args = " ".join(f"-i {p}" for p in hint)
    click.echo(f"next: medrag corpus ingest {source} {args} --out corpora/{what}")
