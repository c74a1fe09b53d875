"""Work units and their receipts.

Inputs (files and folders) expand, in the order given, to files (folder contents sorted by name). Files
given one by one are one unit each; the files of a folder are grouped ``files_per_unit`` at a time (PMC
folders hold millions of small ``.nxml`` files). A unit's shard prefix is derived from its first file's
name and the hash of its file list, so names are deterministic and distinct.

A unit is done when ``<out>/.work/receipts/<prefix>.json`` exists, its build parameters and input file
stats (size, mtime) match, and every shard it lists exists with the recorded sha256. Receipts are written
atomically after the unit's shards are renamed into place, so a killed run leaves either a verified unit or
one that is parsed again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import IngestConfig, config_to_dict
from ..errors import InputError
from ..manifest import fingerprint, sha256_file
from .sources import SourceSpec
from .store import SHARD_DIR

__all__ = [
    "WORK_DIR",
    "RECEIPT_DIR",
    "PARSER_VERSION",
    "Unit",
    "expand_inputs",
    "build_parameters",
    "receipt_path",
    "load_valid_receipt",
    "file_stats",
]

WORK_DIR = ".work"
RECEIPT_DIR = "receipts"
#: bump when a parser's output changes, so existing receipts no longer match
PARSER_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Unit:
    """Input files parsed together into shards ``<prefix>-NNNNN.arrow``."""

    prefix: str
    files: tuple[Path, ...]

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def expand_inputs(spec: SourceSpec, inputs: list[Path]) -> list[Unit]:
    """Units of ``inputs`` in order; InputError (one line) for a missing path or a folder with no inputs."""
    units: list[Unit] = []
    seen: set[Path] = set()
    for given in inputs:
        path = Path(given)
        if not path.exists():
            raise InputError(f"input not found: {path}")
        if path.is_file():
            resolved = path.resolve()
            if resolved not in seen:
                seen.add(resolved)
                units.append(_unit((resolved,), resolved.name))
            continue
        files = sorted(
            (p.resolve() for p in path.rglob("*") if p.is_file() and spec.matches(p)), key=lambda p: str(p)
        )
        files = [f for f in files if f not in seen]
        if not files:
            raise InputError(f"no {spec.name} inputs ({', '.join(spec.suffixes)}) found in folder {path}")
        seen.update(files)
        step = spec.files_per_unit
        name = path.resolve().name
        units.extend(_unit(tuple(files[i : i + step]), name) for i in range(0, len(files), step))
    return units


def _unit(files: tuple[Path, ...], name: str) -> Unit:
    """A unit named after its file (or folder) and the hash of its file list."""
    digest = hashlib.sha256("\n".join(map(str, files)).encode("utf-8")).hexdigest()[:10]
    stem = name
    for suffix in (".gz", ".xml", ".nxml", ".jsonl", ".md", ".txt"):
        stem = stem.removesuffix(suffix)
    stem = _SAFE.sub("_", stem).strip("._")[:40] or "input"
    return Unit(f"{stem}-{digest}", files)


def build_parameters(config: IngestConfig, tokenizer_path: str) -> dict[str, Any]:
    """Machine-independent build parameters (the tokenizer is named by its content hash, not its path)."""
    chunk = config_to_dict(config.chunk)
    chunk.pop("tokenizer", None)
    chunk["tokenizer_sha256"] = _tokenizer_sha(tokenizer_path)
    return {
        "source": config.source,
        "chunk": chunk,
        "shard_rows": config.shard_rows,
        "include_tables": config.include_tables,
        "include_captions": config.include_captions,
        "max_record_bytes": config.max_record_bytes,
        "parser_version": PARSER_VERSION,
    }


def _tokenizer_sha(path: str) -> str:
    p = Path(path)
    return sha256_file(p / "tokenizer.json" if p.is_dir() else p)


def file_stats(files: tuple[Path, ...]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        st = f.stat()
        out.append({"path": str(f), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def receipt_path(work: Path, unit: Unit) -> Path:
    return work / RECEIPT_DIR / f"{unit.prefix}.json"


def load_valid_receipt(work: Path, unit: Unit, params_fp: str) -> dict[str, Any] | None:
    """The unit's receipt when it and its shards verify, else None."""
    path = receipt_path(work, unit)
    try:
        receipt = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(receipt, dict) or receipt.get("parameters_fingerprint") != params_fp:
        return None
    try:
        if receipt.get("inputs") != file_stats(unit.files):
            return None
    except OSError:
        return None
    for shard in receipt.get("shards", []):
        file = work / shard["file"]
        if not file.is_file() or file.stat().st_size == 0 or sha256_file(file) != shard["sha256"]:
            return None
    return receipt


def params_fingerprint(parameters: dict[str, Any]) -> str:
    return fingerprint(parameters)


def shard_dir(work: Path) -> Path:
    return work / SHARD_DIR
