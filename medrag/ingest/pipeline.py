"""Input files → work units → parser → Chunker → Arrow shards → receipts → finalize → manifest.

Layout of a corpus being built::

    <out>/.work/shards/<unit prefix>-NNNNN.arrow   # what each unit produced (kept for resume/updates)
    <out>/.work/receipts/<unit prefix>.json        # written atomically after the unit's shards
    <out>/shards/…                                 # published by finalize (hard links when unchanged)
    <out>/manifest.json                            # written last

Re-running skips units whose receipt and shards verify; ``workers > 1`` parses units in a process pool
(spawned, so no tokenizer state is forked). Finalize resolves ids across units (see ``finalize.py``).
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import IngestConfig, ScaleConfig
from ..errors import ConfigError, InputError
from ..manifest import MANIFEST_NAME, atomic_write_json, fingerprint
from ..scale.ray_engine import run_items
from ..types import Document
from .chunking import Chunker
from .finalize import finalize
from .records import Deleted, Skips
from .sources import get_source
from .store import SHARD_DIR, ShardWriter
from .units import (
    RECEIPT_DIR,
    WORK_DIR,
    Unit,
    build_parameters,
    expand_inputs,
    file_stats,
    load_valid_receipt,
    receipt_path,
)

__all__ = ["IngestReport", "ingest", "run_unit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestReport:
    """What an ingest run produced (also what ``medrag corpus ingest --json`` prints)."""

    out: Path
    source: str
    documents: int
    chunks: int
    skipped: dict[str, int] = field(default_factory=dict)
    replaced: int = 0
    deleted: int = 0
    inputs: int = 0
    units: int = 0
    units_reused: int = 0
    shards: int = 0
    fingerprint: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "source": self.source,
            "documents": self.documents,
            "chunks": self.chunks,
            "skipped": dict(self.skipped),
            "replaced": self.replaced,
            "deleted": self.deleted,
            "inputs": self.inputs,
            "units": self.units,
            "units_reused": self.units_reused,
            "shards": self.shards,
            "fingerprint": self.fingerprint,
            "seconds": round(self.seconds, 3),
        }


def ingest(
    source: str,
    inputs: Sequence[str | Path],
    out: str | Path,
    config: IngestConfig | None = None,
    *,
    progress: bool = True,
    resume: bool = True,
    scale: ScaleConfig | None = None,
) -> IngestReport:
    """Ingest ``inputs`` (files or folders) of ``source`` into the corpus directory ``out``.

    No inputs means the source's default inputs (``guidelines``: the embedded open-medicine guidelines).
    ``resume=False`` discards earlier work in ``out``. Raises InputError for an unknown source or a
    missing input; bad records are skipped and counted, never fatal. ``scale.engine="ray"`` parses the units
    as Ray Data tasks (``medrag.scale.ray_engine``); the corpus is the same.
    """
    started = time.perf_counter()
    spec = get_source(source)
    config = config or IngestConfig(source=source)
    if config.source != source:
        raise ConfigError(f"config is for source {config.source!r}, not {source!r}")
    units = expand_inputs(spec, [Path(p) for p in inputs] or spec.defaults())
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    chunker = Chunker(config.chunk)
    parameters = build_parameters(config, chunker.tokenizer_path)
    params_fp = fingerprint(parameters)
    work = out / WORK_DIR
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    if not resume:
        shutil.rmtree(work, ignore_errors=True)
    _prune(work, units)
    receipts, todo = _done_and_todo(work, units, params_fp)
    log.info("%s: %d units, %d already done", out, len(units), len(receipts))
    for receipt in _run_units(todo, out, config, params_fp, progress=progress, scale=scale):
        receipts[receipt["unit"]] = receipt
    manifest = finalize(out, spec, [receipts[u.prefix] for u in units], parameters)
    totals = manifest["totals"]
    return IngestReport(
        out=out,
        source=source,
        documents=totals["documents"],
        chunks=totals["chunks"],
        skipped=dict(totals.get("skipped", {})),
        replaced=totals.get("replaced", 0),
        deleted=totals.get("deleted", 0),
        inputs=sum(len(u.files) for u in units),
        units=len(units),
        units_reused=len(units) - len(todo),
        shards=len(manifest["shards"]),
        fingerprint=manifest["fingerprint"],
        seconds=time.perf_counter() - started,
    )


def _done_and_todo(
    work: Path, units: list[Unit], params_fp: str
) -> tuple[dict[str, dict[str, Any]], list[Unit]]:
    """Receipts of the units that verify, and the units still to run."""
    receipts: dict[str, dict[str, Any]] = {}
    todo = []
    for unit in units:
        receipt = load_valid_receipt(work, unit, params_fp)
        if receipt is None:
            todo.append(unit)
        else:
            receipts[unit.prefix] = receipt
    return receipts, todo


def _prune(work: Path, units: list[Unit]) -> None:
    """Remove receipts and unit shards that belong to no current unit, and temporary files."""
    prefixes = {u.prefix for u in units}
    receipts = work / RECEIPT_DIR
    if receipts.is_dir():
        for path in receipts.iterdir():
            if path.suffix != ".json" or path.stem not in prefixes:
                path.unlink(missing_ok=True)
    shards = work / SHARD_DIR
    if shards.is_dir():
        for path in shards.iterdir():
            if path.name.startswith(".") or path.name.rsplit("-", 1)[0] not in prefixes:
                path.unlink(missing_ok=True)


def _run_units(
    todo: list[Unit], out: Path, config: IngestConfig, params_fp: str, *, progress: bool,
    scale: ScaleConfig | None = None,
) -> Iterator[dict[str, Any]]:
    if not todo:
        return
    bar = _progress_bar(sum(u.size for u in todo), config.source, progress)
    with bar:
        if scale is not None and scale.engine == "ray":
            by_prefix = {u.prefix: u for u in todo}
            kwargs = {"units": list(todo), "out": str(out), "config": config, "params_fp": params_fp}
            for receipt in run_items([{"unit": i} for i in range(len(todo))], UnitRunner, kwargs, scale):
                bar.update(by_prefix[receipt["unit"]].size)
                yield receipt
            return
        if config.workers == 1 or len(todo) == 1:
            for unit in todo:
                tracker = _Progress(bar, unit)
                receipt = run_unit(unit, out, config, params_fp, on_progress=tracker)
                bar.update(max(unit.size - tracker.done, 0))
                yield receipt
            return
        yield from _run_pool(todo, out, config, params_fp, bar)


def _progress_bar(total: int, source: str, progress: bool) -> Any:
    """A tqdm byte bar on an interactive stderr; otherwise a no-op stand-in (tqdm is not even imported)."""
    if not progress or not sys.stderr.isatty():
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=f"ingest {source}", file=sys.stderr)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        return None


class _Progress:
    """Moves the byte bar as a unit's files finish and shows the records parsed so far."""

    def __init__(self, bar: Any, unit: Unit) -> None:
        self.bar, self.unit, self.done = bar, unit, 0

    def __call__(self, nbytes: int, records: int) -> None:
        self.done += nbytes
        self.bar.update(nbytes)
        if records:
            self.bar.set_postfix_str(f"{self.unit.prefix}: {records:,} records", refresh=False)


def _run_pool(
    todo: list[Unit], out: Path, config: IngestConfig, params_fp: str, bar: Any
) -> Iterator[dict[str, Any]]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = min(config.workers, len(todo))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: dict[Future[dict[str, Any]], Unit] = {
            pool.submit(run_unit, unit, out, config, params_fp): unit for unit in todo
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    unit = pending.pop(future)
                    receipt = future.result()
                    bar.update(unit.size)
                    yield receipt
        except BaseException:
            for future in pending:
                future.cancel()
            raise


class UnitRunner:
    """The Ray engine's work for ingest: ``runner(unit=i)`` parses, chunks and shards unit ``i``; returns
    its receipt."""

    def __init__(self, units: Sequence[Unit], out: str, config: IngestConfig, params_fp: str) -> None:
        self.units, self.out, self.config, self.params_fp = list(units), Path(out), config, params_fp

    def __call__(self, unit: int) -> dict[str, Any]:
        return run_unit(self.units[unit], self.out, self.config, self.params_fp)


def run_unit(
    unit: Unit, out: Path, config: IngestConfig, params_fp: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Parse, chunk and shard one unit; write its receipt last. Returns the receipt.

    ``on_progress(bytes, docs)`` (serial runs) hears of input bytes finished (file by file) and, every
    1,000 records, of the documents parsed so far in this unit.
    """
    spec = get_source(config.source)
    work = Path(out) / WORK_DIR
    _remove_unit_shards(work, unit)
    chunker = Chunker(config.chunk)
    skips = Skips()
    deleted: list[str] = []
    without_chunks: list[str] = []
    documents = chunks = 0
    with ShardWriter(work, unit.prefix, shard_rows=config.shard_rows) as writer:
        for n, record in enumerate(_records(unit, config, skips, on_progress), 1):
            if on_progress is not None and n % 1000 == 0:
                on_progress(0, n)
            if isinstance(record, Deleted):
                deleted.append(record.doc_id)
                continue
            pieces = chunker.chunk(record, inline_headings=spec.inline_headings)
            if not pieces:
                skips.add(spec.empty_reason, record.doc_id)
                without_chunks.append(record.doc_id)
                continue
            writer.write_many(pieces)
            documents += 1
            chunks += len(pieces)
    receipt = {
        "unit": unit.prefix,
        "parameters_fingerprint": params_fp,
        "inputs": file_stats(unit.files),
        "shards": [s.to_dict() for s in writer.shards],
        "documents": documents,
        "chunks": chunks,
        "skipped": skips.to_dict(),
        "skip_examples": skips.examples,
        "deleted": deleted,
        "ids_without_chunks": without_chunks if spec.supersede else [],
    }
    atomic_write_json(receipt_path(work, unit), receipt)
    log.info("%s: %d documents, %d chunks, skipped %s", unit.prefix, documents, chunks, skips.to_dict())
    return receipt


def _records(
    unit: Unit, config: IngestConfig, skips: Skips, on_progress: Callable[[int, int], None] | None
) -> Iterator[Document | Deleted]:
    parse = get_source(config.source).parser()
    for path in unit.files:
        yield from parse(path, config, skips)
        if on_progress is not None:
            on_progress(path.stat().st_size, 0)


def _remove_unit_shards(work: Path, unit: Unit) -> None:
    """Leftovers of an interrupted attempt at this unit (finished or temporary shards)."""
    shards = work / SHARD_DIR
    if not shards.is_dir():
        return
    for path in shards.glob(f"{unit.prefix}-*"):
        path.unlink(missing_ok=True)
    for path in shards.glob(f".{unit.prefix}-*"):
        path.unlink(missing_ok=True)
