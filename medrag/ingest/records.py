"""What source parsers share: deletion records, skip counting, input opening, text clean-up.

A parser is a generator ``parse(path, config, skips) -> Iterator[Document | Deleted]`` over one input file.
It never raises for bad *content*: a bad record is counted in ``skips`` under a short reason
(``missing_id``, ``empty_abstract``, ``invalid_utf8``, ``truncated_gzip``, ``malformed_xml`` …) and skipped.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import InputError

__all__ = [
    "Deleted",
    "Skips",
    "open_binary",
    "Utf8Repair",
    "READ_ERRORS",
    "clean_text",
    "flatten",
    "iter_lines",
    "iter_json_objects",
    "DEFAULT_MAX_RECORD_BYTES",
]

log = logging.getLogger(__name__)

#: exceptions a damaged compressed stream raises while being read
READ_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 31  # zlib: gzip header and trailer
_BLOCK = 1 << 16
_MAX_EXAMPLES = 3
#: default per-record size cap (one jsonl line, one text/markdown file): larger records are skipped as
#: ``record_too_large`` without being read into memory (``IngestConfig.max_record_bytes``)
DEFAULT_MAX_RECORD_BYTES = 16 << 20
#: a ``\uD800``-``\uDFFF`` escape: the line may hold a lone surrogate (checked after parsing)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True, slots=True)
class Deleted:
    """A deletion notice: ``doc_id`` is removed from every earlier input (PubMed ``DeleteCitation``)."""

    doc_id: str


class Skips:
    """Counts skipped records by reason and keeps a few examples (``file: record``) of each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, where: str, n: int = 1) -> None:
        self.counts[reason] += n
        examples = self.examples.setdefault(reason, [])
        if len(examples) < _MAX_EXAMPLES:
            examples.append(where)
        log.debug("skipped (%s): %s", reason, where)

    def to_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for reading bytes, transparently gunzipping (detected by magic bytes, not suffix).

    A damaged gzip stream first returns every byte it could decompress, then raises one of ``READ_ERRORS``
    (``gzip.GzipFile`` would lose the last block's data), so parsers keep the records before the damage.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if fh.peek(2)[:2] == _GZIP_MAGIC:
        return io.BufferedReader(_Gunzip(fh), buffer_size=_BLOCK)
    return fh


class _Gunzip(io.RawIOBase):
    """Streaming gzip decompression (multi-member) that hands out all data before reporting damage."""

    def __init__(self, fh: IO[bytes]) -> None:
        super().__init__()
        self._fh = fh
        self._zlib = zlib.decompressobj(_GZIP_WBITS)
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending and not self._done:
            self._pending = self._inflate()
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _inflate(self) -> bytes:
        data = self._fh.read(_BLOCK)
        if not data:
            self._done = True
            if not self._zlib.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            return b""
        out = self._zlib.decompress(data)
        while self._zlib.eof and self._zlib.unused_data:  # next gzip member
            rest = self._zlib.unused_data
            self._zlib = zlib.decompressobj(_GZIP_WBITS)
            out += self._zlib.decompress(rest)
        return out

    def close(self) -> None:
        self._fh.close()
        super().close()


class Utf8Repair(io.RawIOBase):
    """A byte stream that is always valid UTF-8: invalid sequences become U+FFFD.

    The XML parser would otherwise stop at the first invalid byte and lose the rest of the file; with this,
    only the records containing U+FFFD are lost (parsers skip them as ``invalid_utf8``). ``errors`` counts
    the replaced sequences. Damaged gzip data (``READ_ERRORS``) is remembered in ``read_error`` and the
    stream then ends, so the parser sees a truncated document it can report.
    """

    def __init__(self, raw: IO[bytes], block: int = 1 << 16) -> None:
        super().__init__()
        self._raw: Any = raw  # a buffered stream (gzip, file): read1 is what it offers, not IO[bytes]
        self._block = block
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = b""
        self._eof = False
        self.read_error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        try:
            data = self._raw.read1(self._block)  # one raw read: data before a damaged block is not lost
        except READ_ERRORS as exc:
            self.read_error = exc
            data = b""
        final = not data
        text = self._decoder.decode(data, final=final)
        self._buf += text.encode("utf-8")
        self._eof = final

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buf) < size):
            self._fill()
        if size < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def clean_text(text: str | None) -> str:
    """Collapse every whitespace run to one space and strip."""
    if not text:
        return ""
    # the common case in MEDLINE, decided by C-level scans: a printable text holds no whitespace but the ASCII
    # space, so without a double space only its ends need stripping
    if text.isprintable() and "  " not in text:
        return text.strip()
    return " ".join(text.split())


def flatten(element: Any, inline: frozenset[str] = frozenset()) -> str:
    """All text inside an XML element with markup removed and whitespace collapsed.

    Pretty-printed XML (efetch output) puts a line break and indentation before inline tags
    (``β\\n<sub>2</sub>``); whitespace holding a line break directly before an ``inline`` element is dropped,
    so the result reads ``β2`` like the original.
    """
    if element is None:
        return ""
    if len(element) == 0:
        return clean_text(element.text)
    if not inline:
        return clean_text("".join(element.itertext()))
    parts: list[str] = []
    _collect(element, inline, parts)
    return clean_text("".join(parts))


def _collect(element: Any, inline: frozenset[str], parts: list[str]) -> None:
    if element.text:
        parts.append(element.text)
    for child in element:
        if child.tag in inline and parts and "\n" in parts[-1][len(parts[-1].rstrip()) :]:
            parts[-1] = parts[-1].rstrip()
        if isinstance(child.tag, str):
            _collect(child, inline, parts)
        if child.tail:
            parts.append(child.tail)


def iter_lines(path: Path, skips: Skips, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[tuple[int, str]]:
    """``(line number, decoded line)`` of a (possibly gzipped) text file.

    Lines that are not valid UTF-8 are skipped as ``invalid_utf8``; a line longer than ``max_bytes`` is
    skipped as ``record_too_large`` after being read past in blocks (memory stays bounded by ``max_bytes``);
    a damaged gzip stream ends the file with one ``truncated_gzip``. Blank lines are not yielded.
    """
    with open_binary(path) as fh:
        number = 0
        while True:
            try:
                raw = fh.readline(max_bytes + 1)
                if len(raw) > max_bytes and not raw.endswith(b"\n"):
                    number += 1
                    size = len(raw) + _skip_rest_of_line(fh)
                    skips.add("record_too_large", f"{path.name}:{number} ({size:,} bytes > {max_bytes:,})")
                    continue
            except READ_ERRORS as exc:
                skips.add("truncated_gzip", f"{path.name}: after line {number} ({exc})")
                return
            if not raw:
                return
            number += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                skips.add("invalid_utf8", f"{path.name}:{number}")
                continue
            if line.strip():
                yield number, line


def _skip_rest_of_line(fh: IO[bytes]) -> int:
    """Read past the rest of the current line without keeping it; returns the bytes skipped."""
    skipped = 0
    while True:
        part = fh.readline(_BLOCK)
        skipped += len(part)
        if not part or part.endswith(b"\n"):
            return skipped


def iter_json_objects(
    path: Path, skips: Skips, max_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(location, object)`` for each JSON-object line of a (possibly gzipped) jsonl file.

    A line that is not JSON, or is JSON but not an object, is skipped as ``malformed_record``; one nested
    too deeply to parse as ``too_deep``; one holding a lone surrogate escape (``"\\ud800"``, not text) as
    ``invalid_unicode``; one over ``max_bytes`` as ``record_too_large``. The location (``file:line``) is what
    skip reports name.
    """
    for number, line in iter_lines(path, skips, max_bytes):
        where = f"{path.name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            skips.add("malformed_record", where)
            continue
        except RecursionError:
            skips.add("too_deep", where)
            continue
        if not isinstance(row, dict):
            skips.add("malformed_record", where)
            continue
        if _SURROGATE_ESCAPE.search(line) and not _is_unicode(row):
            skips.add("invalid_unicode", where)
            continue
        yield where, row


def _is_unicode(row: dict[str, Any]) -> bool:
    """Whether every string in ``row`` can be written as UTF-8 (no lone surrogate)."""
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    except RecursionError:
        return False
    return True


def release_element(elem: Any) -> None:
    """Free a processed ``iterparse`` record and the already-processed siblings before it (flat memory)."""
    elem.clear(keep_tail=True)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def read_utf8(path: Path, skips: Skips, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> str | None:
    """A whole text file, or None when it is not valid UTF-8 (counted as ``invalid_utf8``) or larger than
    ``max_bytes`` (``record_too_large``, not read)."""
    size = path.stat().st_size
    if size > max_bytes:
        skips.add("record_too_large", f"{path.name} ({size:,} bytes > {max_bytes:,})")
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        skips.add("invalid_utf8", path.name)
        return None
