"""JATS/BITS XML → Documents: PMC open-access articles, PMC efetch sets, StatPearls (NCBI Bookshelf) chapters.

Streaming: ``iterparse`` over ``<article>`` (JATS) and ``<book-part>`` (BITS) elements, each cleared after
use, so a file holding many articles (``<pmc-articleset>``) stays in constant memory.

* ``doc_id``: ``pmc:PMC<digits>`` (else ``pmc:NBK…`` for Bookshelf chapters, else the element id or file
  name); title = ``article-title`` / ``title`` with inline markup flattened;
* sections: the abstract (heading ``Abstract`` or ``Abstract > <sec title>``), then every body ``<sec>`` with
  its heading path (``Methods > Statistics``); paragraphs, lists, quotes and boxed text in reading order;
  citation markers (``<xref ref-type="bibr">``) are dropped with the brackets they leave empty;
* ``include_tables``: each ``<table-wrap>`` adds a section ``<path> > Table 1`` holding its caption and rows
  (cells joined by `` | ``); ``include_captions``: each ``<fig>`` adds ``<path> > Figure 1`` with its caption;
* metadata: PMCID, PMID, DOI, journal (or book title), year, licence (URL or type), URL.

Bad input: malformed XML skips the rest of that file (``malformed_xml``; one article per ``.nxml`` file
means one article), a truncated gzip the same (``truncated_gzip``), an article containing invalid UTF-8 is
skipped (``invalid_utf8``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from ..config import IngestConfig
from ..types import Document, Metadata, Section
from .records import Skips, Utf8Repair, clean_text, open_binary, release_element

__all__ = ["parse"]

_TAGS = ("article", "book-part")
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_BLOCKS = frozenset({"p", "disp-quote", "boxed-text", "statement", "verse-group", "speech", "def-list", "list"})
_FLOATS = frozenset({"table-wrap", "fig"})
_NEVER_TEXT = frozenset(
    {"table-wrap", "fig", "fig-group", "table-wrap-group", "disp-formula", "supplementary-material", "media",
     "graphic", "alternatives", "object-id", "label"}
)
_CONTAINERS = frozenset({"fig-group", "table-wrap-group", "sec-meta"})
_MARK = "\x00"  # stands for a dropped citation marker while the text is cleaned
_MARK_RUN = re.compile(r"\x00(?:\s*[,;–-]\s*\x00)+")
_MARK_BRACKETED = re.compile(r"\s*[\[(]\s*\x00\s*[\])]")
_MARK_BARE = re.compile(r"\s*\x00")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[,.;:](?:\s|$))")
_YEAR = re.compile(r"(1[89]|20)\d\d")


def parse(path: Path, config: IngestConfig, skips: Skips) -> Iterator[Document]:
    count = 0
    with open_binary(path) as raw:
        stream = Utf8Repair(raw)
        events = etree.iterparse(
            stream, events=("end",), tag=_TAGS, huge_tree=True, resolve_entities=False, no_network=True,
            remove_comments=True, remove_pis=True,
        )
        try:
            for _, elem in events:
                if any(True for _ in elem.iterancestors(*_TAGS)):
                    continue  # nested part: handled with its enclosing article
                doc = _document(elem, path, count, config, skips)
                count += 1
                if doc is not None:
                    yield doc
                release_element(elem)
        except etree.XMLSyntaxError as exc:
            if stream.read_error is not None:
                skips.add("truncated_gzip", f"{path.name}: after article {count} ({stream.read_error})")
            else:
                skips.add("malformed_xml", f"{path.name}: {exc}")
            return
    if stream.read_error is not None:
        skips.add("truncated_gzip", f"{path.name}: after article {count} ({stream.read_error})")
    elif count == 0:
        skips.add("no_records", f"{path.name}: no JATS <article> or BITS <book-part> (not a PMC/Bookshelf file?)")


def _document(elem: Any, path: Path, index: int, config: IngestConfig, skips: Skips) -> Document | None:
    book = elem.tag == "book-part"
    meta_el = elem.find("book-part-meta") if book else elem.find("front/article-meta")
    if meta_el is None:
        meta_el = elem.makeelement("article-meta")
    ids = _ids(meta_el, "book-part-id" if book else "article-id")
    title = _text(meta_el.find("title-group/title" if book else "title-group/article-title"))
    sections: list[Section] = []
    for abstract in meta_el.iterfind("abstract"):
        if abstract.get("abstract-type") not in ("graphical", "teaser", "toc"):
            _walk(abstract, ["Abstract"], sections, config)
    body = elem.find("body")
    if body is not None:
        _walk(body, [], sections, config)
    floats = elem.find("floats-group")
    if floats is not None:
        _walk(floats, [], sections, config)
    doc_id, url = _identity(ids, elem, path, index)
    if "\ufffd" in title or any("\ufffd" in s.text for s in sections):
        skips.add("invalid_utf8", f"{path.name}: {doc_id}")
        return None
    metadata = Metadata(
        pmid=ids.get("pmid"),
        pmcid=ids.get("pmcid"),
        doi=ids.get("doi"),
        journal=_journal(elem, book),
        year=_year(meta_el, elem, book),
        url=url,
        license=_license(meta_el, elem, book),
    )
    return Document(doc_id, "pmc", title, tuple(sections), metadata)


def _ids(meta: Any, tag: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    for node in meta.iterfind(tag):
        kind = (node.get("pub-id-type") or node.get("book-part-id-type") or "").lower()
        value = clean_text(node.text)
        if not kind or not value:
            continue
        if kind in ("pmc", "pmcid"):
            digits = value.upper().removeprefix("PMC")
            if digits.isdigit():
                ids.setdefault("pmcid", f"PMC{digits}")
        elif value.upper().startswith("NBK"):
            ids.setdefault("nbk", value.upper())
        else:
            ids.setdefault(kind, value)
    return ids


def _identity(ids: dict[str, str], elem: Any, path: Path, index: int) -> tuple[str, str | None]:
    if "pmcid" in ids:
        return f"pmc:{ids['pmcid']}", f"https://pmc.ncbi.nlm.nih.gov/articles/{ids['pmcid']}/"
    if "nbk" in ids:
        return f"pmc:{ids['nbk']}", f"https://www.ncbi.nlm.nih.gov/books/{ids['nbk']}/"
    local = elem.get("id") or path.name.split(".")[0] + (f"-{index}" if index else "")
    url = f"https://doi.org/{ids['doi']}" if "doi" in ids else None
    return f"pmc:{local}", url


def _journal(elem: Any, book: bool) -> str | None:
    if book:
        root = elem.getroottree().getroot()
        return _text(root.find("book-meta/book-title-group/book-title")) or None
    return _text(elem.find("front/journal-meta/journal-title-group/journal-title")) or _text(
        elem.find("front/journal-meta/journal-title")
    ) or None


def _year(meta: Any, elem: Any, book: bool) -> int | None:
    dates = list(meta.iterfind("pub-date"))
    if book and not dates:
        dates = list(elem.getroottree().getroot().iterfind("book-meta/pub-date"))
    preferred = sorted(dates, key=lambda d: 0 if (d.get("pub-type") or d.get("date-type")) in ("epub", "ppub", "pub") else 1)
    for date in preferred:
        match = _YEAR.search(date.findtext("year") or "")
        if match:
            return int(match.group())
    return None


def _license(meta: Any, elem: Any, book: bool) -> str | None:
    lic = meta.find("permissions/license")
    if lic is None and book:
        lic = elem.getroottree().getroot().find("book-meta/permissions/license")
    if lic is None:
        return None
    href = lic.get(_XLINK_HREF)
    if href:
        return href.strip()
    if lic.get("license-type"):
        return lic.get("license-type")
    text = _text(lic)
    first = text.split(". ")[0]
    return (first if len(first) <= 200 else first[:200].rsplit(" ", 1)[0]) or None


# ------------------------------------------------------------------------------------------ sections


def _walk(node: Any, path: list[str], out: list[Section], config: IngestConfig) -> None:
    """Append the sections of ``node`` (and of its nested ``<sec>``s) in reading order."""
    heading = " > ".join(path)
    blocks: list[str] = []
    floats: list[Any] = []
    for child in node:
        tag = child.tag
        if tag == "sec":
            _flush(heading, blocks, out)
            blocks = []
            name = _text(child.find("title")) or _text(child.find("label"))
            _walk(child, path + [name] if name else path, out, config)
        elif tag in _BLOCKS:
            text = _block(child)
            if text:
                blocks.append(text)
            floats.extend(child.iter("table-wrap", "fig"))
        elif tag in _FLOATS:
            floats.append(child)
        elif tag in _CONTAINERS:
            floats.extend(child.iter("table-wrap", "fig"))
    _flush(heading, blocks, out)
    for element in floats:
        section = _float_section(element, path, config)
        if section is not None:
            out.append(section)


def _flush(heading: str, blocks: list[str], out: list[Section]) -> None:
    if blocks:
        out.append(Section(heading, "\n".join(blocks)))


def _block(node: Any) -> str:
    if node.tag == "list":
        items = [_block_children(item) for item in node.iterfind("list-item")]
        return "\n".join(f"- {item}" for item in items if item)
    if node.tag == "def-list":
        rows = []
        for item in node.iterfind("def-item"):
            term, definition = _text(item.find("term")), _block_children(item.find("def"))
            if term or definition:
                rows.append(f"- {term}: {definition}" if term else f"- {definition}")
        return "\n".join(rows)
    if node.tag == "p":
        return _text(node)
    return _block_children(node)


def _block_children(node: Any) -> str:
    """Text of a container whose children are paragraphs/lists (list items, quotes, boxes)."""
    if node is None:
        return ""
    parts = [_block(c) for c in node if c.tag in _BLOCKS]
    if not parts:
        return _text(node)
    return " ".join(p for p in parts if p)


def _float_section(element: Any, path: list[str], config: IngestConfig) -> Section | None:
    if element.tag == "table-wrap" and not config.include_tables:
        return None
    if element.tag == "fig" and not config.include_captions:
        return None
    label = _text(element.find("label")) or ("Table" if element.tag == "table-wrap" else "Figure")
    caption = _text(element.find("caption"))
    lines = [f"{label}. {caption}" if caption else label]
    if element.tag == "table-wrap":
        for row in element.iter("tr"):
            cells = [_text(cell) for cell in row if cell.tag in ("td", "th")]
            if any(cells):
                lines.append(" | ".join(cells))
        foot = _text(element.find("table-wrap-foot"))
        if foot:
            lines.append(foot)
    if len(lines) == 1 and not caption:
        return None
    return Section(" > ".join(path + [label]), "\n".join(lines))


def _text(node: Any) -> str:
    """Flattened text of ``node`` without floats, formulas or citation markers."""
    if node is None:
        return ""
    parts: list[str] = []
    _collect(node, parts)
    text = clean_text("".join(parts))
    if _MARK in text:
        text = _MARK_BARE.sub("", _MARK_BRACKETED.sub("", _MARK_RUN.sub(_MARK, text)))
    return _SPACE_BEFORE_PUNCT.sub("", text).strip()


def _collect(node: Any, parts: list[str]) -> None:
    if node.text:
        parts.append(node.text)
    for child in node:
        tag = child.tag
        if tag == "xref" and child.get("ref-type") == "bibr":
            parts.append(_MARK)
        skip = tag in _NEVER_TEXT or tag == "xref" and child.get("ref-type") == "bibr" or tag == "title"
        if not skip and isinstance(tag, str):
            _collect(child, parts)
        elif tag == "title" and node.tag in ("caption",):
            _collect(child, parts)
            parts.append(" ")
        if child.tail:
            parts.append(child.tail)
