"""Arrow storage of chunks: shard writer, corpus manifest, memory-mapped corpus reader.

A corpus directory::

    corpora/pubmed/
      manifest.json            # written last, atomically (see medrag.manifest)
      shards/<name>.arrow      # Arrow IPC *file* format, one or more per input file

Row order across ``manifest["shards"]`` (in list order) is the corpus row order, which is the internal
document index every index (BM25 and FAISS alike) refers to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from .._version import __version__
from ..errors import CorpusError
from ..manifest import MANIFEST_NAME, fingerprint, read_manifest, sha256_file, write_manifest
from ..types import Chunk, Hit, Metadata
from .columns import int32_array, utf8_array, utf8_list_array
from .rows import BatchRows, MemoryRow, RowReader, memory_chunks, memory_hits, memory_rows

__all__ = [
    "CORPUS_FORMAT_VERSION",
    "CHUNK_SCHEMA",
    "SHARD_DIR",
    "ShardInfo",
    "ShardWriter",
    "chunks_to_batch",
    "batch_to_chunks",
    "Corpus",
    "corpus_fingerprint",
    "write_corpus_manifest",
    "write_corpus",
]

log = logging.getLogger(__name__)

CORPUS_FORMAT_VERSION = 1
SHARD_DIR = "shards"
_BATCH_ROWS = 4096

CHUNK_SCHEMA = pa.schema(
    [
        pa.field("chunk_id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("section", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("pmid", pa.string()),
        pa.field("pmcid", pa.string()),
        pa.field("doi", pa.string()),
        pa.field("journal", pa.string()),
        pa.field("year", pa.int32()),
        pa.field("mesh", pa.list_(pa.string())),
        pa.field("publication_types", pa.list_(pa.string())),
        pa.field("url", pa.string()),
        pa.field("license", pa.string()),
        pa.field("organization", pa.string()),
        pa.field("extra", pa.string()),  # JSON object of source-specific string pairs, "" when none
    ],
    metadata={"medrag.corpus_format_version": str(CORPUS_FORMAT_VERSION)},
)

def chunks_to_batch(chunks: Sequence[Chunk]) -> pa.RecordBatch:
    """Columnar form of ``chunks`` in ``CHUNK_SCHEMA`` (built column by column from buffers: ``columns``)."""
    metas = [c.metadata for c in chunks]
    arrays = [
        utf8_array([c.chunk_id for c in chunks]),
        utf8_array([c.doc_id for c in chunks]),
        utf8_array([c.source for c in chunks]),
        utf8_array([c.title for c in chunks]),
        utf8_array([c.section for c in chunks]),
        utf8_array([c.text for c in chunks]),
        int32_array([c.position for c in chunks]),
        utf8_array([m.pmid for m in metas]),
        utf8_array([m.pmcid for m in metas]),
        utf8_array([m.doi for m in metas]),
        utf8_array([m.journal for m in metas]),
        int32_array([m.year for m in metas]),
        utf8_list_array([m.mesh for m in metas]),
        utf8_list_array([m.publication_types for m in metas]),
        utf8_array([m.url for m in metas]),
        utf8_array([m.license for m in metas]),
        utf8_array([m.organization for m in metas]),
        utf8_array([_extra_json(m.extra) if m.extra else "" for m in metas]),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=CHUNK_SCHEMA)


def _extra_json(extra: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(dict(extra), sort_keys=True, ensure_ascii=False)


def _row_to_chunk(row: dict[str, Any]) -> Chunk:
    extra = row.get("extra") or ""
    meta = Metadata(
        pmid=row.get("pmid"),
        pmcid=row.get("pmcid"),
        doi=row.get("doi"),
        journal=row.get("journal"),
        year=row.get("year"),
        mesh=tuple(row.get("mesh") or ()),
        publication_types=tuple(row.get("publication_types") or ()),
        url=row.get("url"),
        license=row.get("license"),
        organization=row.get("organization"),
        extra=tuple(sorted(json.loads(extra).items())) if extra else (),
    )
    return Chunk(
        chunk_id=row["chunk_id"],
        doc_id=row["doc_id"],
        source=row["source"],
        title=row["title"],
        section=row["section"],
        text=row["text"],
        position=int(row["position"]),
        metadata=meta,
    )


def batch_to_chunks(batch: pa.RecordBatch | pa.Table) -> list[Chunk]:
    """Chunks from a batch/table in ``CHUNK_SCHEMA`` (row order kept)."""
    with corrupt_data_is_an_error():
        return [_row_to_chunk(row) for row in batch.to_pylist()]


@contextlib.contextmanager
def corrupt_data_is_an_error() -> Iterator[None]:
    """Shard bytes that are not valid UTF-8, or an unparseable ``extra`` (a corrupted shard whose size still
    matches the manifest), become a one-line CorpusError instead of a decoding traceback."""
    try:
        yield
    except (UnicodeDecodeError, json.JSONDecodeError, pa.ArrowException) as exc:
        raise CorpusError(
            f"corpus shard data is corrupt ({type(exc).__name__}); run `medrag corpus verify` or "
            "`medrag index verify`, then re-ingest"
        ) from None


# ---------------------------------------------------------------------------------------------- writer


@dataclass(frozen=True)
class ShardInfo:
    """A finished shard: path relative to the corpus root, row count, sha256."""

    file: str
    rows: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "sha256": self.sha256}


class ShardWriter:
    """Streams chunks into Arrow IPC shards named ``<prefix>-00000.arrow``, ``<prefix>-00001.arrow``…

    Each shard is written to a hidden temporary name and renamed when complete, so a shard file that
    exists under its final name is whole. Memory stays bounded by one batch (``_BATCH_ROWS`` chunks).
    Use as a context manager; ``shards`` lists what was finished. On an exception the partial shard is removed.
    """

    def __init__(self, root: str | os.PathLike[str], prefix: str, shard_rows: int = 100_000) -> None:
        if "/" in prefix or prefix.startswith("."):
            raise CorpusError(f"invalid shard prefix {prefix!r}")
        self.root = Path(root)
        self.prefix = prefix
        self.shard_rows = shard_rows
        self.shards: list[ShardInfo] = []
        self._pending: list[Chunk] = []
        self._writer: ipc.RecordBatchFileWriter | None = None
        self._sink: Any = None
        self._tmp: Path | None = None
        self._rows_in_shard = 0
        (self.root / SHARD_DIR).mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, chunk: Chunk) -> None:
        self._pending.append(chunk)
        if len(self._pending) >= _BATCH_ROWS or self._rows_in_shard + len(self._pending) >= self.shard_rows:
            self._flush()

    def write_many(self, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _open(self) -> ipc.RecordBatchFileWriter:
        index = len(self.shards)
        self._tmp = self.root / SHARD_DIR / f".{self.prefix}-{index:05d}.arrow.tmp"
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = ipc.new_file(self._sink, CHUNK_SCHEMA)
        self._rows_in_shard = 0
        return self._writer

    def _flush(self) -> None:
        while self._pending:
            writer = self._writer if self._writer is not None else self._open()
            room = self.shard_rows - self._rows_in_shard
            part, self._pending = self._pending[:room], self._pending[room:]
            writer.write_batch(chunks_to_batch(part))
            self._rows_in_shard += len(part)
            if self._rows_in_shard >= self.shard_rows:
                self._finish_shard()

    def _finish_shard(self) -> None:
        if self._writer is None or self._tmp is None:
            return
        self._writer.close()
        self._sink.close()
        with open(self._tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        final = self._tmp.with_name(self._tmp.name[1:].removesuffix(".tmp"))
        os.replace(self._tmp, final)
        self.shards.append(
            ShardInfo(f"{SHARD_DIR}/{final.name}", self._rows_in_shard, sha256_file(final))
        )
        self._writer = None
        self._tmp = None
        self._rows_in_shard = 0

    def close(self) -> list[ShardInfo]:
        """Flush and finish the open shard. A writer that received no chunk writes no shard."""
        self._flush()
        self._finish_shard()
        return self.shards

    def abort(self) -> None:
        """Drop the partially written shard (finished shards stay)."""
        if self._writer is not None:
            try:
                self._writer.close()
                self._sink.close()
            except (OSError, pa.ArrowException):
                pass
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._writer = None
        self._tmp = None
        self._pending = []


# ---------------------------------------------------------------------------------------------- reader


def corpus_fingerprint(parameters: dict[str, Any], shards: Sequence[dict[str, Any]]) -> str:
    """Content fingerprint of a corpus: its build parameters and its shards' hashes in order."""
    return fingerprint({"parameters": parameters, "shards": [s["sha256"] for s in shards]})


def write_corpus_manifest(
    root: str | os.PathLike[str],
    *,
    source: str,
    parameters: dict[str, Any],
    shards: Sequence[ShardInfo | dict[str, Any]],
    totals: dict[str, Any],
    inputs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Write ``manifest.json`` (last, atomically) for shards that are already complete on disk.

    ``totals`` holds at least ``documents`` and ``chunks``; ``skipped`` maps reason -> count.
    """
    shard_dicts = [s.to_dict() if isinstance(s, ShardInfo) else dict(s) for s in shards]
    rows = sum(s["rows"] for s in shard_dicts)
    if totals.get("chunks", rows) != rows:
        raise CorpusError(f"totals say {totals['chunks']} chunks but shards hold {rows} rows")
    manifest = {
        "kind": "corpus",
        "format_version": CORPUS_FORMAT_VERSION,
        "medrag_version": __version__,
        "source": source,
        "parameters": parameters,
        "inputs": list(inputs),
        "shards": shard_dicts,
        "totals": {"chunks": rows, **totals},
        "fingerprint": corpus_fingerprint(parameters, shard_dicts),
    }
    return write_manifest(Path(root) / MANIFEST_NAME, manifest)


def write_corpus(
    root: str | os.PathLike[str],
    chunks: Iterable[Chunk],
    *,
    source: str,
    parameters: dict[str, Any] | None = None,
    shard_rows: int = 100_000,
) -> Corpus:
    """Write ready-made chunks as a complete corpus directory (small corpora, tests, converters)."""
    root = Path(root)
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    docs: set[str] = set()
    with ShardWriter(root, "part", shard_rows=shard_rows) as writer:
        for chunk in chunks:
            docs.add(chunk.doc_id)
            writer.write(chunk)
    write_corpus_manifest(
        root,
        source=source,
        parameters=parameters or {},
        shards=writer.shards,
        totals={"documents": len(docs), "skipped": {}},
    )
    return Corpus.open(root)


class Corpus:
    """A read-only, memory-mapped view of one or more corpus directories.

    Opening reads the manifests and memory-maps the shards; it never writes. Several corpora opened together
    behave as one: rows are numbered in the order the directories were given, then shard order.
    """

    def __init__(self, paths: Sequence[Path], manifests: Sequence[dict[str, Any]], table: pa.Table) -> None:
        self.paths = tuple(paths)
        self.manifests = tuple(manifests)
        self.table = table
        # Row fetching in O(k): the memory-mapped record batches and the corpus row each one starts at.
        self._batches = table.to_batches()
        sizes = np.fromiter((b.num_rows for b in self._batches), dtype=np.int64, count=len(self._batches))
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._start_list: list[int] = self._starts.tolist()
        self._readers: list[BatchRows | None] = [None] * len(self._batches)
        self._memory: list[MemoryRow] | None = None  # every row decoded (``load_rows``), else None: mmap

    def load_rows(self) -> None:
        """Decode every row once into Python values held in memory (``rows="memory"`` of ``load_index``).

        ``take``/``hits`` then build records from them instead of decoding from the memory-mapped shards:
        faster per query, at the cost of the whole corpus' text in RAM (see docs/scaling.md). Idempotent.
        """
        if self._memory is not None:
            return
        memory: list[MemoryRow] = []
        with corrupt_data_is_an_error():
            for b in range(len(self._batches)):
                memory.extend(memory_rows(BatchRows(self._batches[b])))
        self._memory = memory

    @property
    def rows(self) -> str:
        """Where records are read from: ``"memory"`` after ``load_rows``, else ``"mmap"``."""
        return "mmap" if self._memory is None else "memory"

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: bool = False) -> Corpus:
        """Open one corpus directory. ``verify=True`` also checks every shard's sha256 (reads all bytes)."""
        return cls.open_many([path], verify=verify)

    @classmethod
    def open_many(cls, paths: Sequence[str | os.PathLike[str]], *, verify: bool = False) -> Corpus:
        if not paths:
            raise CorpusError("no corpus given")
        roots, manifests, tables = [], [], []
        for p in paths:
            root = Path(p)
            manifest = read_manifest(
                root, kind="corpus", supported_versions=(CORPUS_FORMAT_VERSION,), error=CorpusError
            )
            tables.extend(_open_shards(root, manifest, verify=verify))
            roots.append(root)
            manifests.append(manifest)
        table = pa.concat_tables(tables) if tables else CHUNK_SCHEMA.empty_table()
        return cls(roots, manifests, table)

    # -- facts -----------------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """One fingerprint per corpus directory, in order."""
        return tuple(m["fingerprint"] for m in self.manifests)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(m["source"] for m in self.manifests)

    # -- access ----------------------------------------------------------------------------------
    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)

    def iter_batches(
        self, columns: Sequence[str] | None = None, batch_size: int = 8192
    ) -> Iterator[pa.RecordBatch]:
        """Stream rows in corpus order as record batches of at most ``batch_size`` rows."""
        table = self.table.select(list(columns)) if columns else self.table
        yield from table.to_batches(max_chunksize=batch_size)

    def take(self, rows: Sequence[int] | np.ndarray) -> list[Chunk]:
        """Chunks at the given corpus row numbers, in the order given.

        Costs O(k): each row is located in its record batch (binary search over batch starts) and only
        that row is decoded from the memory-mapped shard buffers (``rows.RowReader``), whatever the corpus size.
        """
        if self._memory is not None:
            return memory_chunks(self._held(self._memory, rows))
        reader = self._locate(rows)
        with corrupt_data_is_an_error():
            return reader.chunks()

    def hits(self, rows: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> list[Hit]:
        """``Hit``s (rank 1..k) for corpus ``rows`` and their ``scores``, read like ``take``."""
        values = scores.astype(np.float64).tolist() if isinstance(scores, np.ndarray) else [float(s) for s in scores]
        return self._hits(rows, values, None)

    def hits_many(self, results: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[list[Hit]]:
        """``[hits(rows, scores) for rows, scores in results]`` (a batch of queries' ranked rows), decoded in
        one pass: the records of the whole batch are built together, so the per-call cost is paid once."""
        if len(results) < 2:
            return [self.hits(rows, scores) for rows, scores in results]
        counts = [len(rows) for rows, _ in results]
        if any(len(scores) != n for n, (_, scores) in zip(counts, results, strict=True)):
            raise ValueError("every result needs one score per row")
        rows = np.concatenate([np.asarray(r, dtype=np.int64) for r, _ in results])
        values = np.concatenate([np.asarray(s, dtype=np.float64) for _, s in results]).tolist()
        flat = self._hits(rows, values, [rank for n in counts for rank in range(1, n + 1)])
        ends = np.cumsum(counts).tolist()
        return [flat[end - n: end] for n, end in zip(counts, ends, strict=True)]

    def _hits(self, rows: Sequence[int] | np.ndarray, values: list[float], ranks: list[int] | None) -> list[Hit]:
        if self._memory is not None:
            held = self._held(self._memory, rows)
            if len(values) != len(held):
                raise ValueError(f"{len(held)} rows but {len(values)} scores")
            return memory_hits(held, values, ranks)
        reader = self._locate(rows)
        if len(values) != len(reader.js):
            raise ValueError(f"{len(reader.js)} rows but {len(values)} scores")
        with corrupt_data_is_an_error():
            return reader.hits(values, ranks)

    @staticmethod
    def _held(memory: list[MemoryRow], rows: Sequence[int] | np.ndarray) -> list[MemoryRow]:
        wanted = rows.tolist() if isinstance(rows, np.ndarray) else list(rows)
        if wanted and not (0 <= min(wanted) and max(wanted) < len(memory)):
            bad = next(r for r in wanted if not 0 <= r < len(memory))
            raise IndexError(f"row {bad} out of range [0, {len(memory)})")
        return [memory[r] for r in wanted]

    def _locate(self, rows: Sequence[int] | np.ndarray) -> RowReader:
        wanted = rows.tolist() if isinstance(rows, np.ndarray) else list(rows)
        starts, readers, total = self._start_list, self._readers, self.num_rows
        if len(starts) == 2:  # one record batch: no search
            if wanted and not (0 <= min(wanted) and max(wanted) < total):
                bad = next(r for r in wanted if not 0 <= r < total)
                raise IndexError(f"row {bad} out of range [0, {total})")
            return RowReader([self._reader(0)] * len(wanted), wanted)
        batches, js = [], []
        for row in wanted:
            if not 0 <= row < total:
                raise IndexError(f"row {row} out of range [0, {total})")
            b = bisect_right(starts, row) - 1
            reader = readers[b]
            batches.append(reader if reader is not None else self._reader(b))
            js.append(row - starts[b])
        return RowReader(batches, js)

    def _reader(self, b: int) -> BatchRows:
        reader = self._readers[b]
        if reader is None:
            reader = self._readers[b] = BatchRows(self._batches[b])
        return reader

    def chunk(self, row: int) -> Chunk:
        if not 0 <= row < self.num_rows:
            raise IndexError(f"row {row} out of range [0, {self.num_rows})")
        return self.take([row])[0]

    def __iter__(self) -> Iterator[Chunk]:
        for batch in self.iter_batches():
            yield from batch_to_chunks(batch)


def _open_shards(root: Path, manifest: dict[str, Any], *, verify: bool) -> list[pa.Table]:
    tables = []
    for shard in manifest.get("shards", []):
        path = root / shard["file"]
        if not path.is_file():
            raise CorpusError(f"{root}: shard {shard['file']} listed in {MANIFEST_NAME} is missing")
        if verify and sha256_file(path) != shard["sha256"]:
            raise CorpusError(f"{root}: shard {shard['file']} is corrupt (sha256 differs from the manifest)")
        try:
            table = ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorpusError(f"{root}: shard {shard['file']} is unreadable ({exc})") from exc
        if table.num_rows != shard["rows"]:
            raise CorpusError(
                f"{root}: shard {shard['file']} has {table.num_rows} rows, manifest says {shard['rows']}"
            )
        if not table.schema.equals(CHUNK_SCHEMA, check_metadata=False):
            raise CorpusError(f"{root}: shard {shard['file']} has an unexpected schema")
        tables.append(table)
    return tables
