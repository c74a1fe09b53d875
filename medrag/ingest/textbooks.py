"""Textbooks: folders of ``.txt``/``.md`` books and MedRAG-style chunk ``.jsonl``.

* ``.md``: one document per file; headings become sections (heading paths, see ``markdown.py``); the
  leading level-1 heading is the title (else the file name).
* ``.txt``: one document per file; paragraphs (blank-line separated) are heading-less sections, so chunks
  break between paragraphs; the title is the file name (``Anatomy_Gray.txt`` → ``Anatomy Gray``).
* ``.jsonl[.gz]`` (MedRAG ``{id, title, content, contents}``): one document per line, ``doc_id`` = ``id``
  verbatim (so MedRAG snippet ids still match), text = ``content`` (``contents`` = title + content is not
  repeated).

File documents are ``textbook:<file stem>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..config import IngestConfig
from ..types import Document, Metadata, Section
from .markdown import paragraph_sections, split_markdown
from .records import Skips, clean_text, iter_json_objects, read_utf8

__all__ = ["parse"]


def parse(path: Path, config: IngestConfig, skips: Skips) -> Iterator[Document]:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        yield from _parse_chunks(path, skips, config.max_record_bytes)
        return
    text = read_utf8(path, skips, config.max_record_bytes)
    if text is None:
        return
    stem = path.name.split(".")[0]
    title = stem.replace("_", " ").strip()
    if name.endswith((".md", ".markdown")):
        heading, sections = split_markdown(text)
        title = heading or title
    else:
        sections = paragraph_sections(text)
    yield Document(f"textbook:{stem}", "textbooks", title, tuple(sections), Metadata())


def _parse_chunks(path: Path, skips: Skips, max_bytes: int) -> Iterator[Document]:
    for where, row in iter_json_objects(path, skips, max_bytes):
        doc_id = row.get("id")
        if not isinstance(doc_id, (str, int)) or not str(doc_id).strip():
            skips.add("missing_id", where)
            continue
        title = clean_text(row.get("title")) if isinstance(row.get("title"), str) else ""
        content = row.get("content")
        if not isinstance(content, str) or not content.strip():
            content = _strip_title(row.get("contents"), title)
        sections = (Section("", content.strip()),) if content.strip() else ()
        yield Document(str(doc_id), "textbooks", title, sections, Metadata())


def _strip_title(contents: object, title: str) -> str:
    """MedRAG's ``contents`` is ``title + ". " + content``; drop the title part."""
    if not isinstance(contents, str):
        return ""
    if title and contents.startswith(title):
        return contents[len(title) :].lstrip(". ").strip()
    return contents
