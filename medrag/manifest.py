"""Manifests and file integrity shared by corpora and indexes.

A corpus or an index is a directory whose ``manifest.json`` is written **last** and atomically (temp file,
fsync, rename). A directory without a manifest is an incomplete build; a file whose sha256 differs from the
manifest is corruption. Loads never write.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import MedragError

__all__ = [
    "MANIFEST_NAME",
    "atomic_write_bytes",
    "atomic_write_json",
    "sha256_file",
    "read_manifest",
    "fingerprint",
    "DIGEST_KEY",
    "manifest_digest",
    "seal_manifest",
    "write_manifest",
    "check_manifest_digest",
]

MANIFEST_NAME = "manifest.json"
#: key under which a manifest stores the sha256 of its own canonical content (every other key)
DIGEST_KEY = "manifest_sha256"
_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; manifests are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as pretty, key-sorted JSON (stable bytes for stable content)."""
    data = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
    atomic_write_bytes(path, data)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_manifest(
    directory: str | os.PathLike[str],
    *,
    kind: str,
    supported_versions: tuple[int, ...],
    error: type[MedragError],
) -> dict[str, Any]:
    """Read and sanity-check ``<directory>/manifest.json``.

    ``kind`` is ``"corpus"`` or ``"index"``; the manifest's ``kind`` and ``format_version`` must match.
    Raises ``error`` (a MedragError subclass) with a message naming the directory and what is wrong.
    """
    root = Path(directory)
    if not root.exists():
        raise error(f"{root}: no such {kind} directory")
    if not root.is_dir():
        raise error(f"{root}: not a directory (a {kind} is a directory with a {MANIFEST_NAME})")
    path = root / MANIFEST_NAME
    if not path.exists():
        raise error(f"{root}: no {MANIFEST_NAME}; the {kind} build is incomplete or this is not a {kind}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: manifest is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise error(f"{path}: manifest must be a JSON object")
    if manifest.get("kind") != kind:
        raise error(f"{path}: manifest kind is {manifest.get('kind')!r}, expected {kind!r}")
    version = manifest.get("format_version")
    if version not in supported_versions:
        raise error(
            f"{path}: format_version {version!r} is not supported by this medrag "
            f"(supported: {', '.join(map(str, supported_versions))}); rebuild the {kind}"
        )
    check_manifest_digest(manifest, path, kind=kind, error=error)
    return manifest


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON (key-sorted, compact), leaving out the digest itself."""
    return fingerprint({k: v for k, v in manifest.items() if k != DIGEST_KEY})


def seal_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """``manifest`` plus its own content digest (what ``read_manifest`` checks)."""
    body = {k: v for k, v in manifest.items() if k != DIGEST_KEY}
    return {**body, DIGEST_KEY: manifest_digest(body)}


def write_manifest(path: str | os.PathLike[str], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Seal ``manifest`` with its digest and write it atomically; returns what was written."""
    sealed = seal_manifest(manifest)
    atomic_write_json(path, sealed)
    return sealed


def check_manifest_digest(manifest: Mapping[str, Any], path: Path, *, kind: str, error: type[MedragError]) -> None:
    """Refuse a manifest whose content no longer matches the digest it was written with (any edit)."""
    recorded = manifest.get(DIGEST_KEY)
    if recorded is None:
        raise error(f"{path}: manifest has no {DIGEST_KEY} (edited, or written by an older medrag); rebuild the {kind}")
    if recorded != manifest_digest(manifest):
        raise error(f"{path}: manifest was modified after it was written ({DIGEST_KEY} does not match); "
                    f"rebuild the {kind}")


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A stable content fingerprint: sha256 over key-sorted JSON of ``parts``."""
    data = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()
