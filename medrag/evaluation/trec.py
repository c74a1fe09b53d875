"""TREC run and qrels files: the formats trec_eval reads.

Run line: ``qid Q0 docid rank score tag`` (rank starts at 1; trec_eval ranks by score, not by this column).
Qrels line: ``qid 0 docid grade``. Doc ids containing whitespace cannot be written (trec_eval splits on it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import EvaluationError, InputError
from ..manifest import atomic_write_bytes
from .metrics import trec_order

__all__ = ["write_run", "read_run", "write_qrels", "run_lines"]


def _check_id(value: str, what: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise EvaluationError(f"{what} {value!r} is empty or contains whitespace; TREC files cannot hold it")
    return value


def run_lines(run: Mapping[str, Mapping[str, float]], tag: str) -> list[str]:
    """Lines of a TREC run, queries in sorted order, docs in trec_eval's rank order."""
    tag = _check_id(tag, "run tag")
    lines = []
    for qid in sorted(run):
        for rank, did in enumerate(trec_order(run[qid]), 1):
            lines.append(
                f"{_check_id(qid, 'query id')} Q0 {_check_id(did, 'doc id')} {rank} {run[qid][did]!r} {tag}"
            )
    return lines


def write_run(path: str | os.PathLike[str], run: Mapping[str, Mapping[str, float]], tag: str) -> Path:
    """Write ``run`` ({qid: {docid: score}}) atomically as a TREC run file."""
    text = "\n".join(run_lines(run, tag))
    atomic_write_bytes(path, (text + "\n" if text else "").encode("utf-8"))
    return Path(path)


def read_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """{qid: {docid: score}} from a TREC run file."""
    run: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise InputError(f"{path}:{n}: a TREC run line has 6 fields: qid Q0 docid rank score tag")
            qid, _, did, _, score, _ = parts
            try:
                run.setdefault(qid, {})[did] = float(score)
            except ValueError as exc:
                raise InputError(f"{path}:{n}: score {score!r} is not a number") from exc
    return run


def write_qrels(path: str | os.PathLike[str], qrels: Mapping[str, Mapping[str, int]]) -> Path:
    """Write graded judgements as TREC qrels (``qid 0 docid grade``)."""
    lines = [
        f"{_check_id(q, 'query id')} 0 {_check_id(d, 'doc id')} {int(qrels[q][d])}"
        for q in sorted(qrels)
        for d in sorted(qrels[q])
    ]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return Path(path)
