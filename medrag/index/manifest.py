"""The index manifest: what an index was built from and with, and every file's size and sha256.

``manifest.json`` is written last and atomically. Loading checks it cheaply (format version, file presence
and sizes, corpus fingerprints); ``verify=True`` also re-hashes every file. Nothing here writes on load.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import IndexFormatError
from ..ingest.store import Corpus
from ..manifest import MANIFEST_NAME, atomic_write_json, read_manifest, sha256_file

__all__ = [
    "INDEX_FORMAT_VERSION",
    "corpus_refs",
    "file_records",
    "write_index_manifest",
    "read_index_manifest",
    "check_files",
    "resolve_corpora",
]

INDEX_FORMAT_VERSION = 1


def corpus_refs(corpus: Corpus, index_dir: Path) -> list[dict[str, Any]]:
    """How the index names its corpora: a path relative to the index (portable), the absolute path, the
    fingerprint and row count of each, in row order."""
    refs = []
    for path, manifest in zip(corpus.paths, corpus.manifests, strict=True):
        absolute = Path(path).resolve()
        rel = os.path.relpath(absolute, index_dir.resolve())
        rows = sum(int(s["rows"]) for s in manifest.get("shards", []))
        refs.append(
            {
                "path": rel,
                "absolute_path": str(absolute),
                "fingerprint": manifest["fingerprint"],
                "rows": rows,
                "source": manifest.get("source"),
            }
        )
    return refs


def file_records(index_dir: Path, files: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{relative path: {"size", "sha256"}}`` for the index's files."""
    records = {}
    for rel in sorted(files):
        path = index_dir / rel
        records[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return records


def write_index_manifest(index_dir: Path, body: dict[str, Any], files: Sequence[str]) -> dict[str, Any]:
    manifest = {
        "kind": "index",
        "format_version": INDEX_FORMAT_VERSION,
        "medrag_version": __version__,
        **body,
        "files": file_records(index_dir, files),
    }
    atomic_write_json(index_dir / MANIFEST_NAME, manifest)
    return manifest


def read_index_manifest(index_dir: str | Path) -> dict[str, Any]:
    root = Path(index_dir)
    if not root.exists():
        raise IndexFormatError(f"{root}: no such index; build one with `medrag index build`")
    return read_manifest(
        root, kind="index", supported_versions=(INDEX_FORMAT_VERSION,), error=IndexFormatError
    )


def check_files(index_dir: Path, manifest: dict[str, Any], *, verify: bool = False) -> None:
    """Every listed file exists with its recorded size; with ``verify`` its sha256 matches too."""
    for rel, record in manifest.get("files", {}).items():
        path = index_dir / rel
        if not path.is_file():
            raise IndexFormatError(f"{index_dir}: file {rel} listed in {MANIFEST_NAME} is missing; rebuild")
        size = path.stat().st_size
        if size != record["size"]:
            raise IndexFormatError(
                f"{index_dir}: file {rel} is corrupt (size {size} bytes, manifest says {record['size']}); rebuild"
            )
        if verify and sha256_file(path) != record["sha256"]:
            raise IndexFormatError(
                f"{index_dir}: file {rel} is corrupt (sha256 differs from the manifest); rebuild the index"
            )


def _locate(index_dir: Path, ref: dict[str, Any]) -> Path:
    for candidate in (index_dir / ref["path"], Path(ref["absolute_path"])):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise IndexFormatError(
        f"{index_dir}: corpus {ref['path']} (also tried {ref['absolute_path']}) not found; "
        "the index needs the corpus it was built from"
    )


def resolve_corpora(index_dir: Path, manifest: dict[str, Any], *, verify: bool = False) -> Corpus:
    """Open the corpora the index was built from (memory-mapped) and check their fingerprints."""
    refs = manifest.get("corpora") or []
    if not refs:
        raise IndexFormatError(f"{index_dir}: manifest names no corpus")
    paths = [_locate(index_dir, ref) for ref in refs]
    corpus = Corpus.open_many(paths, verify=verify)
    for ref, path, found in zip(refs, paths, corpus.fingerprints, strict=True):
        if found != ref["fingerprint"]:
            raise IndexFormatError(
                f"{index_dir}: corpus {path} changed since the index was built "
                f"(fingerprint {found[:12]}…, index expects {ref['fingerprint'][:12]}…); rebuild the index"
            )
    if corpus.num_rows != manifest.get("rows"):
        raise IndexFormatError(
            f"{index_dir}: corpora hold {corpus.num_rows} rows, the index was built on {manifest.get('rows')}"
        )
    return corpus
