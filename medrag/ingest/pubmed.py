"""MEDLINE/PubMed XML → Documents (baseline and update files, efetch output; plain or gzipped).

Streaming: ``lxml.etree.iterparse`` with a tag filter on the top-level records and each record cleared
after use, so memory stays flat whatever the file size. One document per citation:

* ``doc_id`` ``pubmed:<PMID>``; title = ``ArticleTitle`` (inline markup such as ``<i>``/``<sub>`` flattened);
* one section per ``AbstractText`` (heading ``Abstract``) whose text keeps the structured label
  (``BACKGROUND: …``), so the chunk reads like the abstract on pubmed.ncbi.nlm.nih.gov;
* metadata: PMID, PMCID, DOI, journal, year, MeSH descriptors, publication types, URL.

``DeleteCitation`` entries yield ``Deleted`` notices (finalize removes those PMIDs from earlier inputs).
A citation without abstract text yields a document with no sections (counted as ``empty_abstract``).

Bad input: text with invalid UTF-8 → that citation is skipped (``invalid_utf8``); a truncated gzip ends
the file (``truncated_gzip``, the citations before it are kept); malformed XML → the file is re-read record
by record from the failing citation on, and only the records that do not parse are skipped
(``malformed_xml``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from ..config import IngestConfig
from ..types import Document, Metadata, Section
from .records import Deleted, Skips, Utf8Repair, clean_text, flatten, open_binary, release_element

__all__ = ["parse", "parse_record", "pubmed_url"]

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
_INLINE = frozenset({"i", "b", "u", "sub", "sup", "sc", "{http://www.w3.org/1998/Math/MathML}math"})
_YEAR = re.compile(r"(1[89]|20)\d\d")
_RECORD_START = re.compile(rb"<(PubmedArticle|PubmedBookArticle|DeleteCitation)[\s>]")
_BLOCK = 1 << 20


def pubmed_url(pmid: str) -> str:
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"


def parse(path: Path, config: IngestConfig, skips: Skips) -> Iterator[Document | Deleted]:
    """Documents and deletion notices of one MEDLINE/PubMed XML file, in file order."""
    done = 0  # top-level records fully handled
    with open_binary(path) as raw:
        stream = Utf8Repair(raw)
        events = etree.iterparse(
            stream, events=("end",), tag=_RECORD_TAGS, huge_tree=True, resolve_entities=False, no_network=True,
            collect_ids=False,
        )
        try:
            for _, elem in events:
                yield from _emit(elem, path, skips)
                done += 1
                release_element(elem)
        except etree.XMLSyntaxError as exc:
            if stream.read_error is not None:
                skips.add("truncated_gzip", f"{path.name}: after record {done} ({stream.read_error})")
                return
            if done == 0 and not _has_records(path):
                skips.add("malformed_xml", f"{path.name}: {exc}")
                return
            yield from _recover(path, done, skips)
            return
        if stream.read_error is not None:
            skips.add("truncated_gzip", f"{path.name}: after record {done} ({stream.read_error})")
        elif done == 0:
            skips.add("no_records", f"{path.name}: no PubmedArticle, PubmedBookArticle or DeleteCitation")


def _emit(elem: Any, path: Path, skips: Skips) -> Iterator[Document | Deleted]:
    if elem.tag == "DeleteCitation":
        for pmid in elem.iterfind("PMID"):
            if pmid.text and pmid.text.strip():
                yield Deleted(f"pubmed:{pmid.text.strip()}")
        return
    doc = parse_record(elem, path.name, skips)
    if doc is not None:
        yield doc


def parse_record(elem: Any, where: str, skips: Skips) -> Document | None:
    """One ``PubmedArticle``/``PubmedBookArticle`` element → Document (None when skipped)."""
    book = elem.tag == "PubmedBookArticle"
    citation = _child(elem, "BookDocument" if book else "MedlineCitation")
    pmid = clean_text(_text(citation, "PMID"))
    if not pmid:
        skips.add("missing_pmid", f"{where}: record without PMID")
        return None
    article = citation if book else _child(citation, "Article")
    if article is None:
        skips.add("malformed_record", f"{where}: PMID {pmid} has no Article")
        return None
    title = flatten(_child(article, "ArticleTitle"), _INLINE)
    if not title:
        fallback = _child(article, "Book", "BookTitle") if book else _child(article, "VernacularTitle")
        title = flatten(fallback, _INLINE)
    sections = _abstract(_child(article, "Abstract"))
    if "\ufffd" in title or any("\ufffd" in s.text for s in sections):
        skips.add("invalid_utf8", f"{where}: PMID {pmid}")
        return None
    meta = _book_metadata(elem, citation, pmid) if book else _metadata(elem, citation, article, pmid)
    return Document(f"pubmed:{pmid}", "pubmed", title, sections, meta)


def _child(elem: Any, *path: str) -> Any:
    """The first child along ``path`` (tag names), or None. Much cheaper than ``find`` on this hot path."""
    for tag in path:
        if elem is None:
            return None
        elem = next(elem.iterchildren(tag), None)
    return elem


def _text(elem: Any, *path: str) -> str | None:
    node = _child(elem, *path)
    return node.text if node is not None else None


def _abstract(abstract: Any) -> tuple[Section, ...]:
    if abstract is None:
        return ()
    sections = []
    for part in abstract.iterchildren("AbstractText"):
        text = flatten(part, _INLINE)
        if not text:
            continue
        label = clean_text(part.get("Label"))
        sections.append(Section("Abstract", f"{label}: {text}" if label else text))
    return tuple(sections)


def _metadata(elem: Any, citation: Any, article: Any, pmid: str) -> Metadata:
    ids = _article_ids(elem, "PubmedData")
    doi = ids.get("doi")
    if doi is None:
        for loc in article.iterchildren("ELocationID"):
            if loc.get("EIdType") == "doi" and loc.text:
                doi = loc.text.strip()
                break
    journal = _child(article, "Journal")
    return Metadata(
        pmid=pmid,
        pmcid=ids.get("pmc"),
        doi=doi,
        journal=clean_text(_text(journal, "Title")) or None,
        year=_year(_child(journal, "JournalIssue", "PubDate")),
        mesh=_terms(_child(citation, "MeshHeadingList"), "DescriptorName"),
        publication_types=_terms(_child(article, "PublicationTypeList"), "PublicationType"),
        url=pubmed_url(pmid),
    )


def _book_metadata(elem: Any, citation: Any, pmid: str) -> Metadata:
    ids = _article_ids(elem, "PubmedBookData")
    book = _child(citation, "Book")
    return Metadata(
        pmid=pmid,
        doi=ids.get("doi"),
        journal=clean_text(_text(book, "BookTitle")) or None,
        year=_year(_child(book, "PubDate")),
        publication_types=tuple(clean_text(p.text) for p in citation.iterchildren("PublicationType") if p.text),
        url=pubmed_url(pmid),
    )


def _terms(parent: Any, tag: str) -> tuple[str, ...]:
    """Texts of the ``tag`` descendants (controlled vocabularies: no markup, no inner whitespace runs)."""
    if parent is None:
        return ()
    return tuple(t.text.strip() for t in parent.iter(tag) if t.text)


def _article_ids(elem: Any, data: str) -> dict[str, str]:
    """The record's own ids (``<data>/ArticleIdList``; reference lists hold other articles' ids)."""
    ids: dict[str, str] = {}
    id_list = _child(elem, data, "ArticleIdList")
    if id_list is None:
        return ids
    for node in id_list.iterchildren("ArticleId"):
        kind = node.get("IdType")
        if kind and node.text and kind not in ids:
            ids[kind] = node.text.strip()
    return ids


def _year(date: Any) -> int | None:
    if date is None:
        return None
    text = _text(date, "Year") or _text(date, "MedlineDate") or ""
    match = _YEAR.search(text)
    return int(match.group()) if match else None


# ------------------------------------------------------------------------------------------- recovery


def _has_records(path: Path) -> bool:
    with open_binary(path) as raw:
        try:
            return _RECORD_START.search(raw.read(_BLOCK)) is not None
        except (EOFError, OSError):
            return False


def _recover(path: Path, skip: int, skips: Skips) -> Iterator[Document | Deleted]:
    """Re-read ``path`` record by record after a syntax error, from top-level record ``skip`` on."""
    parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
    for number, blob in enumerate(_split_records(path, skips)):
        if number < skip:
            continue
        try:
            elem = etree.fromstring(blob, parser)
        except etree.XMLSyntaxError as exc:
            skips.add("malformed_xml", f"{path.name}: record {number} ({exc})")
            continue
        yield from _emit(elem, path, skips)


def _split_records(path: Path, skips: Skips) -> Iterator[bytes]:
    """Raw bytes of each top-level record (start tag to matching end tag), in file order."""
    with open_binary(path) as raw:
        stream = Utf8Repair(raw)
        buf = b""
        eof = False
        while True:
            match = _RECORD_START.search(buf)
            end = -1
            if match is not None:
                closing = b"</" + match.group(1) + b">"
                end = buf.find(closing, match.end())
                if end >= 0:
                    end += len(closing)
                    nxt = _RECORD_START.search(buf, match.end())
                    if nxt is not None and nxt.start() < end:  # unclosed record: cut at the next one
                        yield buf[match.start() : nxt.start()]
                        buf = buf[nxt.start() :]
                        continue
                    yield buf[match.start() : end]
                    buf = buf[end:]
                    continue
            if eof:
                if match is not None:
                    yield buf[match.start() :]
                break
            data = stream.read(_BLOCK)
            eof = not data
            buf += data
        if stream.read_error is not None:
            skips.add("truncated_gzip", f"{path.name}: {stream.read_error}")
