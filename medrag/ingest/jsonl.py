"""BEIR / R2MED ``corpus.jsonl`` → Documents (plain or gzipped).

* BEIR: ``{"_id", "title", "text", "metadata": {...}}``
* R2MED: ``{"id", "text"}`` (also ``title``/``contents``/``content`` when present)

Ids are kept verbatim as ``doc_id`` (no prefix), so qrels still match; chunk ids are ``<id>#<n>``.
Known metadata keys (pmid, pmcid, doi, journal, year, url, license, organization, mesh,
publication_types) fill ``Metadata``; other scalar metadata is kept in ``Metadata.extra``.
Skipped lines: ``malformed_record`` (not a JSON object), ``missing_id``, ``empty_text``,
``invalid_utf8``; a damaged gzip ends the file (``truncated_gzip``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import IngestConfig
from ..types import Document, Metadata, Section
from .records import Skips, clean_text, iter_json_objects

__all__ = ["parse", "row_metadata"]

_TEXT_KEYS = ("text", "contents", "content")
_STR_FIELDS = ("pmid", "pmcid", "doi", "journal", "url", "license", "organization")
_LIST_FIELDS = ("mesh", "publication_types")


def parse(path: Path, config: IngestConfig, skips: Skips) -> Iterator[Document]:
    for where, row in iter_json_objects(path, skips, config.max_record_bytes):
        doc_id = row.get("_id", row.get("id"))
        if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()) or isinstance(doc_id, (dict, list)):
            skips.add("missing_id", where)
            continue
        text = next((row[k] for k in _TEXT_KEYS if isinstance(row.get(k), str) and row[k].strip()), "")
        title = row.get("title") if isinstance(row.get("title"), str) else ""
        sections = (Section("", text.strip()),) if text.strip() else ()
        yield Document(str(doc_id), "jsonl", clean_text(title), sections, row_metadata(row.get("metadata")))


def row_metadata(meta: Any) -> Metadata:
    """``Metadata`` from a free-form metadata mapping (unknown keys go to ``extra``)."""
    if not isinstance(meta, dict):
        return Metadata()
    kw: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for key, value in meta.items():
        if value is None or value == "":
            continue
        if key in _STR_FIELDS:
            kw[key] = str(value)
        elif key in _LIST_FIELDS and isinstance(value, list):
            kw[key] = tuple(str(v) for v in value)
        elif key == "year" and _is_year(value):
            kw["year"] = int(value)
        elif isinstance(value, (str, int, float, bool)):
            extra[str(key)] = str(value)
    return Metadata(**kw, extra=tuple(sorted(extra.items())))


def _is_year(value: Any) -> bool:
    try:
        return 0 < int(value) < 3000
    except (TypeError, ValueError):
        return False
