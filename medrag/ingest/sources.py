"""The source registry: which parser reads which inputs, and how their documents are chunked and merged.

Parsers are imported by name only when used (``SourceSpec.parser()``), so worker processes and
``medrag corpus --help`` stay light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import IngestConfig
    from ..types import Document
    from .records import Deleted, Skips

    Parser = Callable[[Path, IngestConfig, Skips], Iterator[Document | Deleted]]

__all__ = ["SourceSpec", "SOURCES", "get_source", "source_names"]


@dataclass(frozen=True)
class SourceSpec:
    """How one source is ingested.

    ``suffixes``: file endings picked from an input folder. ``files_per_unit``: files grouped into one work
    unit (and one shard prefix) when a folder holds many small files. ``inline_headings``: section headings
    are written at the start of their text. ``supersede``: later inputs win (a newer record of an id replaces
    the older one, ``Deleted`` notices remove it); otherwise the first record of an id wins and later ones
    are skipped as ``duplicate_id``. ``default_inputs``: ``module:function`` giving the inputs used when none
    are given (``None``: inputs are required).
    """

    name: str
    module: str
    description: str
    suffixes: tuple[str, ...]
    files_per_unit: int = 1
    inline_headings: bool = True
    supersede: bool = False
    default_inputs: str | None = None
    #: skip reason of a parsed document that yields no text to chunk
    empty_reason: str = "empty_text"

    def parser(self) -> Parser:
        return importlib.import_module(self.module).parse  # type: ignore[no-any-return]

    def defaults(self) -> list[Path]:
        if self.default_inputs is None:
            raise InputError(f"source {self.name!r} needs at least one --input")
        module, attr = self.default_inputs.split(":")
        return list(getattr(importlib.import_module(module), attr)())

    def matches(self, path: Path) -> bool:
        name = path.name.lower()
        return not name.startswith(".") and name.endswith(self.suffixes)


SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec(
            "pubmed",
            "medrag.ingest.pubmed",
            "MEDLINE/PubMed XML (baseline, update files, efetch output), plain or .gz",
            (".xml", ".xml.gz"),
            inline_headings=False,
            supersede=True,
            empty_reason="empty_abstract",
        ),
        SourceSpec(
            "pmc",
            "medrag.ingest.pmc",
            "JATS articles (.nxml/.xml[.gz]: PMC open access, StatPearls NBK, PMC efetch sets)",
            (".nxml", ".nxml.gz", ".xml", ".xml.gz"),
            files_per_unit=500,
        ),
        SourceSpec(
            "textbooks",
            "medrag.ingest.textbooks",
            "folders of .txt/.md books, MedRAG chunk .jsonl ({id,title,content,contents})",
            (".txt", ".md", ".markdown", ".jsonl", ".jsonl.gz"),
            files_per_unit=50,
        ),
        SourceSpec(
            "guidelines",
            "medrag.ingest.guidelines",
            "guideline .jsonl ({id,source,title,clean_text,url}) or markdown; default: open-medicine",
            (".md", ".markdown", ".jsonl", ".jsonl.gz"),
            files_per_unit=200,
            default_inputs="medrag.ingest.guidelines:default_inputs",
        ),
        SourceSpec(
            "jsonl",
            "medrag.ingest.jsonl",
            "BEIR corpus.jsonl ({_id,title,text,metadata}) or R2MED ({id,text}); ids kept verbatim",
            (".jsonl", ".jsonl.gz"),
        ),
    )
}


def source_names() -> list[str]:
    return sorted(SOURCES)


def get_source(name: str) -> SourceSpec:
    """The spec of ``name``; InputError (one line) for an unknown source."""
    try:
        return SOURCES[name]
    except KeyError:
        raise InputError(f"unknown source {name!r}; known sources: {', '.join(source_names())}") from None
