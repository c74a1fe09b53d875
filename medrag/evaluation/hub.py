"""``--from-hub``: fetch R2MED tasks and MedRGB from the Hugging Face hub into the layouts the loaders read.

Uses ``huggingface_hub.snapshot_download`` (installed with sentence-transformers; no ``datasets`` needed).
A snapshot's files may be JSONL or Parquet, at any depth; they are normalised into an R2MED task folder
(``corpus.jsonl``, ``query.jsonl``, ``qrels.jsonl``) or a bundled MedRGB JSONL. Nothing here runs in tests
against the network; offline (``HF_HUB_OFFLINE=1``) a download fails with a DownloadError saying so.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..errors import DataNotFoundError, DependencyMissingError, DownloadError
from .data import R2MED_TASKS

__all__ = ["download_r2med", "download_medrgb", "normalise_r2med_snapshot", "rows_of"]

log = logging.getLogger(__name__)
_PARTS = {"corpus": ("corpus",), "query": ("query", "queries"), "qrels": ("qrels",)}


def _snapshot(repo_id: str, dest: Path) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise DependencyMissingError("huggingface-hub", "eval", "--from-hub downloads") from exc
    try:
        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset", local_dir=str(dest)))
    except (OSError, ValueError) as exc:  # hub HTTP errors and offline misses are OSErrors
        raise DownloadError(f"could not download {repo_id} from the Hugging Face hub ({type(exc).__name__}: "
                            f"{exc}); check the network or HF_HUB_OFFLINE, or download it by hand") from exc


def rows_of(path: Path) -> list[dict[str, Any]]:
    """Records of a .jsonl / .json / .parquet file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else [data]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _find(snapshot: Path, names: tuple[str, ...]) -> list[Path]:
    files = [p for p in sorted(snapshot.rglob("*")) if p.is_file() and p.suffix in (".jsonl", ".json", ".parquet", ".txt")]
    return [p for p in files if any(p.stem.lower().startswith(n) or p.parent.name.lower() == n for n in names)]


def normalise_r2med_snapshot(snapshot: Path, out: Path) -> Path:
    """Write ``corpus.jsonl``, ``query.jsonl``, ``qrels.jsonl`` (or keep ``qrels.txt``) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for part, names in _PARTS.items():
        files = _find(snapshot, names)
        if not files:
            raise DataNotFoundError(f"{snapshot}: no {part} file in the downloaded snapshot")
        if part == "qrels" and files[0].suffix == ".txt":
            (out / "qrels.txt").write_bytes(files[0].read_bytes())
            continue
        target = out / ("query.jsonl" if part == "query" else f"{part}.jsonl")
        if files[0].resolve() == target.resolve():
            continue
        with open(target, "w", encoding="utf-8") as fh:
            for path in files:
                for row in rows_of(path):
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def download_r2med(tasks: tuple[str, ...], dest: str | Path) -> Path:
    """Download R2MED tasks (default: all eight) as task folders under ``dest``; returns ``dest``."""
    dest = Path(dest)
    for task in tasks or R2MED_TASKS:
        folder = dest / task
        if (folder / "corpus.jsonl").is_file() and (folder / "query.jsonl").is_file():
            continue
        snap = _snapshot(f"R2MED/{task}", dest / ".hub" / task)
        normalise_r2med_snapshot(snap, folder)
        log.info("R2MED/%s -> %s", task, folder)
    return dest


def download_medrgb(dest: str | Path, configs: tuple[str, ...] = ("bioasq", "pubmedqa", "medqa", "mmlu")) -> Path:
    """Download ngotrnghia1811/MedRGB and write one bundled JSONL (``medrgb.jsonl``) of the chosen configs."""
    dest = Path(dest)
    target = dest / "medrgb.jsonl"
    if target.is_file():
        return target
    snap = _snapshot("ngotrnghia1811/MedRGB", dest / ".hub")
    rows = 0
    with open(target, "w", encoding="utf-8") as fh:
        for path in sorted(snap.rglob("*")):
            config = next((c for c in configs if c in path.as_posix().lower()), None)
            if not path.is_file() or path.suffix not in (".parquet", ".jsonl", ".json") or config is None:
                continue
            for row in rows_of(path):
                fh.write(json.dumps({"dataset": config, **row}, ensure_ascii=False, default=str) + "\n")
                rows += 1
    if rows == 0:
        target.unlink(missing_ok=True)
        raise DataNotFoundError(f"{snap}: no MedRGB records for {', '.join(configs)} in the snapshot")
    return target
