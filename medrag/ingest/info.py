"""What ``medrag corpus info`` shows: a corpus manifest summarised, optionally verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CorpusError
from ..manifest import read_manifest
from .store import CORPUS_FORMAT_VERSION, Corpus

__all__ = ["corpus_info"]


def corpus_info(path: str | Path, *, verify: bool = False) -> dict[str, Any]:
    """Manifest facts of the corpus at ``path``; ``verify`` also checks every shard (CorpusError if bad)."""
    root = Path(path)
    manifest = read_manifest(root, kind="corpus", supported_versions=(CORPUS_FORMAT_VERSION,), error=CorpusError)
    size = 0
    for shard in manifest.get("shards", []):
        file = root / shard["file"]
        if not file.is_file():
            raise CorpusError(f"{root}: shard {shard['file']} listed in manifest.json is missing")
        size += file.stat().st_size
    info: dict[str, Any] = {
        "path": str(root),
        "source": manifest.get("source"),
        "format_version": manifest.get("format_version"),
        "medrag_version": manifest.get("medrag_version"),
        "totals": manifest.get("totals", {}),
        "parameters": manifest.get("parameters", {}),
        "fingerprint": manifest.get("fingerprint"),
        "shards": manifest.get("shards", []),
        "inputs": manifest.get("inputs", []),
        "bytes": size,
    }
    if verify:
        corpus = Corpus.open(root, verify=True)
        info["verified"] = corpus.num_rows == info["totals"].get("chunks", corpus.num_rows)
        if not info["verified"]:
            raise CorpusError(f"{root}: shards hold {corpus.num_rows} rows, manifest totals say otherwise")
    return info
