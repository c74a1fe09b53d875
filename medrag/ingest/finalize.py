"""Finalize: resolve document ids across units, publish shards, write the manifest last.

An *occurrence* is one parsed document: its chunk rows start at ``position == 0`` and run until the next
such row (they may continue into the unit's next shard). Units are ordered as the inputs were given.

* ``supersede`` sources (PubMed): the last occurrence of an id wins. Earlier occurrences in earlier units
  are ``replaced``; an earlier one in the same unit is a ``duplicate_id``. A ``Deleted`` notice in unit
  *u* removes the id's occurrences in units ≤ *u* (``deleted``); a newer version that has no text
  (``ids_without_chunks``, e.g. an abstract that was removed) also replaces older ones.
* other sources: the first occurrence wins; later ones are skipped as ``duplicate_id``.

Unaffected unit shards are published into ``<out>/shards`` as hard links (copies where links fail);
shards that lose rows are rewritten there with those rows dropped. The work is done with Arrow compute
over the ``doc_id``/``position`` columns (memory-mapped), so it scales to the full PubMed baseline.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from ..manifest import sha256_file

# pyarrow's own list/numpy conversions (pa.array, pa.scalar, to_numpy) import pandas: ~0.5 CPU-s per ingest
from .columns import int32_array, numpy_array, to_numpy, utf8_array
from .sources import SourceSpec
from .store import _BATCH_ROWS, CHUNK_SCHEMA, SHARD_DIR, write_corpus_manifest
from .units import WORK_DIR

__all__ = ["finalize", "plan_drops", "DropPlan"]


@dataclass(frozen=True)
class DropPlan:
    """Rows to drop per shard (global row ranges), and the counts by reason."""

    ranges: list[tuple[int, int]]  # [start, end) global row ranges, sorted
    counts: Counter[str]
    live_documents: int


def finalize(
    out: Path, spec: SourceSpec, receipts: list[dict[str, Any]], parameters: dict[str, Any]
) -> dict[str, Any]:
    """Publish the units' shards into ``out`` and write ``manifest.json``; returns the manifest."""
    work = out / WORK_DIR
    shards = [(i, s) for i, r in enumerate(receipts) for s in r["shards"]]
    plan = plan_drops(work, spec, shards, receipts)
    published = _publish(out, work, [s for _, s in shards], plan.ranges)
    skipped: Counter[str] = Counter()
    for r in receipts:
        skipped.update(r["skipped"])
    skipped.update({k: v for k, v in plan.counts.items() if k == "duplicate_id"})
    totals = {
        "documents": plan.live_documents,
        "chunks": sum(s["rows"] for s in published),
        "skipped": dict(sorted(skipped.items())),
        "replaced": plan.counts.get("replaced", 0),
        "deleted": plan.counts.get("deleted", 0),
        "delete_notices": sum(len(r.get("deleted", ())) for r in receipts),
        "units": len(receipts),
        "input_files": sum(len(r["inputs"]) for r in receipts),
    }
    inputs = [
        {
            "unit": r["unit"],
            "path": r["inputs"][0]["path"] if r["inputs"] else "",
            "files": len(r["inputs"]),
            "bytes": sum(i["size"] for i in r["inputs"]),
            "documents": r["documents"],
            "chunks": r["chunks"],
            "skipped": r["skipped"],
            "skip_examples": r.get("skip_examples", {}),
        }
        for r in receipts
    ]
    return write_corpus_manifest(
        out, source=spec.name, parameters=parameters, shards=published, totals=totals, inputs=inputs
    )


# ------------------------------------------------------------------------------------------ planning


def _occurrences(work: Path, shards: list[tuple[int, dict[str, Any]]]) -> tuple[pa.Table, int]:
    """Table (doc_id, start, unit) of every occurrence, and the total row count."""
    ids, starts, units = [], [], []
    offset = 0
    for unit, shard in shards:
        table = _read(work / shard["file"], ["doc_id", "position"])
        first = np.flatnonzero(to_numpy(table.column("position")) == 0)
        ids.append(pc.take(table.column("doc_id"), numpy_array(first)).combine_chunks())
        starts.append(numpy_array(first.astype(np.int64) + offset))
        units.append(np.full(len(first), unit, dtype=np.int32))
        offset += table.num_rows
    if not ids:
        return pa.table({"doc_id": pa.array([], pa.string()), "start": pa.array([], pa.int64()),
                         "unit": pa.array([], pa.int32())}), 0
    table = pa.table(
        {
            "doc_id": pa.concat_arrays(ids),
            "start": pa.concat_arrays(starts),
            "unit": numpy_array(np.concatenate(units)),
        }
    )
    return table, offset


def _read(path: Path, columns: list[str]) -> pa.Table:
    with pa.memory_map(str(path), "r") as source:
        return ipc.open_file(source).read_all().select(columns)


def _notice_units(receipts: list[dict[str, Any]], key: str) -> pa.Table:
    """(doc_id, unit) with the *last* unit that issued a notice of kind ``key`` for the id."""
    last: dict[str, int] = {}
    for i, r in enumerate(receipts):
        for doc_id in r.get(key, ()):
            last[doc_id] = i
    return pa.table({"doc_id": utf8_array(list(last)), "unit": int32_array(list(last.values()))})


def _lookup_unit(doc_ids: pa.Array, notices: pa.Table) -> np.ndarray:
    """Per occurrence, the unit of the matching notice, or -1."""
    if notices.num_rows == 0:
        return np.full(len(doc_ids), -1, dtype=np.int32)
    idx = pc.index_in(doc_ids, value_set=notices.column("doc_id"))
    units = pc.take(notices.column("unit"), idx)
    return to_numpy(units, fill=-1)


_REASONS = ("", "replaced", "duplicate_id", "deleted")  # codes 0..3 of the per-occurrence reason array


def _winners(ids: pa.Array, keep_last: bool) -> dict[int, int]:
    """Ordinal → winning ordinal, for the occurrences of ids that occur more than once.

    A stable sort brings equal ids together (ordinals ascending within a run); only the few duplicated ids
    are handled in Python. Memory: the sort permutation and a sorted copy of the ids, ~40 bytes per document.
    """
    n = len(ids)
    if n < 2:
        return {}
    order = pc.sort_indices(ids)
    ranked = pc.take(ids, order)
    equal = to_numpy(pc.equal(ranked.slice(1), ranked.slice(0, n - 1)))
    del ranked
    positions = np.flatnonzero(equal)
    if len(positions) == 0:
        return {}
    order_np = to_numpy(order)
    winners: dict[int, int] = {}
    run: list[int] = []
    for p in positions.tolist():
        if run and p != run[-1]:  # p starts a new run of equal ids
            _settle(run, order_np, keep_last, winners)
            run = []
        if not run:
            run.append(p)
        run.append(p + 1)
    _settle(run, order_np, keep_last, winners)
    return winners


def _settle(run: list[int], order: np.ndarray, keep_last: bool, winners: dict[int, int]) -> None:
    members = sorted(int(order[i]) for i in run)
    best = members[-1] if keep_last else members[0]
    for m in members:
        winners[m] = best


def plan_drops(
    work: Path, spec: SourceSpec, shards: list[tuple[int, dict[str, Any]]], receipts: list[dict[str, Any]]
) -> DropPlan:
    occ, total_rows = _occurrences(work, shards)
    n = occ.num_rows
    ids = occ.column("doc_id").combine_chunks()
    starts = to_numpy(occ.column("start"))
    unit = to_numpy(occ.column("unit"))
    del occ
    reason = np.zeros(n, dtype=np.int8)
    loser = np.zeros(n, dtype=bool)
    for ordinal, best in _winners(ids, keep_last=spec.supersede).items():
        if ordinal != best:
            loser[ordinal] = True
            same = unit[best] == unit[ordinal]
            reason[ordinal] = 2 if same or not spec.supersede else 1
    if spec.supersede and n:
        deleted_in = _lookup_unit(ids, _notice_units(receipts, "deleted"))
        deleted = ~loser & (deleted_in >= unit)
        reason[deleted] = 3
        del deleted_in
        newer_empty = _lookup_unit(ids, _notice_units(receipts, "ids_without_chunks"))
        reason[~loser & (reason == 0) & (newer_empty > unit)] = 1
    dropped = np.flatnonzero(reason)
    codes, numbers = np.unique(reason[dropped], return_counts=True)
    counts: Counter[str] = Counter({_REASONS[c]: int(k) for c, k in zip(codes, numbers, strict=True)})
    ends = np.append(starts[1:], total_rows)
    ranges = [(int(starts[i]), int(ends[i])) for i in dropped]
    return DropPlan(ranges=ranges, counts=counts, live_documents=int(n - len(dropped)))


# ---------------------------------------------------------------------------------------- publishing


def _publish(
    out: Path, work: Path, shards: list[dict[str, Any]], ranges: list[tuple[int, int]]
) -> list[dict[str, Any]]:
    """Link or rewrite every unit shard into ``out/shards``; remove anything else there."""
    target_dir = out / SHARD_DIR
    target_dir.mkdir(parents=True, exist_ok=True)
    published: list[dict[str, Any]] = []
    offset = 0
    k = 0  # first range that may touch the current shard
    for shard in shards:
        rows = shard["rows"]
        drop = np.zeros(rows, dtype=bool)
        while k < len(ranges) and ranges[k][1] <= offset:
            k += 1
        j = k
        while j < len(ranges) and ranges[j][0] < offset + rows:
            a, b = ranges[j]
            drop[max(a - offset, 0) : min(b - offset, rows)] = True
            j += 1
        src, dst = work / shard["file"], out / shard["file"]
        if not drop.any():
            _link(src, dst)
            published.append(dict(shard))
        elif not drop.all():
            published.append(_rewrite(src, dst, shard["file"], ~drop))
        offset += rows
    keep = {Path(s["file"]).name for s in published}
    for path in target_dir.iterdir():
        if path.name not in keep:
            path.unlink(missing_ok=True)
    return published


def _link(src: Path, dst: Path) -> None:
    if dst.exists():
        if os.path.samefile(src, dst):
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def _rewrite(src: Path, dst: Path, rel: str, keep: np.ndarray) -> dict[str, Any]:
    table = _read(src, CHUNK_SCHEMA.names).filter(numpy_array(keep))
    tmp = dst.with_name(f".{dst.name}.tmp")
    dst.unlink(missing_ok=True)  # may be a hard link to the unit shard: never write through it
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, CHUNK_SCHEMA) as writer:
        for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
            writer.write_batch(batch)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dst)
    return {"file": rel, "rows": table.num_rows, "sha256": sha256_file(dst)}
