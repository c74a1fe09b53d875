"""``medrag search`` and ``medrag index verify``: open an index (``load_index``) and use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..cli_common import emit_json, json_option, stdout_console
from ..config import rerank_config
from ..errors import ConfigError
from ..index import DEFAULT_INDEX
from .base import check_k, check_query
from .load import load_index
from .rerank import CrossEncoderReranker

__all__ = ["search", "verify_cmd"]


@click.command("verify")
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_INDEX, required=False)
@json_option
def verify_cmd(path: Path, as_json: bool) -> None:
    """Re-hash every index file and corpus shard against the manifests."""
    retriever = load_index(path, mode="bm25", verify=True)
    n = len(retriever.manifest.files)
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
@click.option("--mode", default="hybrid", show_default=True,
              help="hybrid = every leg (BM25, dense, extra dense legs) fused with the index's default fusion; "
                   "bm25, dense, or an extra dense leg's name alone.")
@click.option("--source", multiple=True, help="Only chunks from this source (repeatable).")
@click.option("--year-from", type=int, default=None, help="Only chunks published in or after this year.")
@click.option("--year-to", type=int, default=None, help="Only chunks published in or before this year.")
@click.option("--doc-id", "doc_ids", multiple=True, help="Only chunks of this document (repeatable).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N] for the query encoder and FAISS.")
@click.option("--rerank-model", default=None,
              help="Re-rank with a cross-encoder for this search: a preset (medcpt-cross, bge-reranker-v2-m3), "
                   "a local folder or a hub name (overrides the index's own re-ranker).")
@click.option("--rerank-depth", type=click.IntRange(min=1), default=None,
              help="Rows the re-ranker re-scores per query (default: the preset's, 50).")
@json_option
def search(query: str, index_path: Path, k: int, mode: str, source: tuple[str, ...], year_from: int | None,
           year_to: int | None, doc_ids: tuple[str, ...], device: str, rerank_model: str | None,
           rerank_depth: int | None, as_json: bool) -> None:
    """Search an index (hybrid, bm25, dense or one leg; optionally re-ranked) and show the top hits."""
    query, k = check_query(query), check_k(k)
    reranker = None
    if rerank_model:
        reranker = CrossEncoderReranker(rerank_config(rerank_model, rerank_depth, device))
    elif rerank_depth:
        raise ConfigError("--rerank-depth needs --rerank-model")
    retriever = load_index(index_path, mode=mode, device=device, reranker=reranker)
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
