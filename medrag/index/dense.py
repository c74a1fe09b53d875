"""Dense side of an index: resumable sharded encoding, FAISS build/load/search, filtered search.

Encoding writes ``dense/shards/shard-NNNNN.npy`` (``shard_rows`` passages each, written atomically) next to
a ``state.json`` naming the encoder and corpus they belong to; a killed build resumes at the first missing
shard. The shards are then streamed into one ``dense/vectors.npy`` (opened later with ``mmap_mode="r"``)
and the shard folder is removed.

FAISS indexes are made by factory string; indexes that need training are trained on a seeded sample.
``Flat`` indexes load memory-mapped (``IO_FLAG_MMAP_IFC``), IVF inverted lists with ``IO_FLAG_MMAP``.
Filtered search never truncates before filtering: small allowed sets are scored exactly from the vector
memmap, larger ones through a FAISS ``IDSelectorBitmap`` (CPU) or an over-fetch loop (GPU), with an exact
fallback whenever an approximate index returns fewer than ``k`` allowed rows.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..config import FaissConfig
from ..errors import BackendUnavailableError, ConfigError, IndexFormatError
from ..manifest import atomic_write_json
from .bm25 import topk

__all__ = [
    "shard_ranges",
    "prepare_shard_dir",
    "pending_shards",
    "write_shard",
    "shard_paths",
    "encode_to_shards",
    "merge_shards",
    "load_vectors",
    "faiss_module",
    "resolve_faiss_device",
    "train_faiss",
    "build_faiss",
    "load_faiss",
    "DenseIndex",
    "exact_search",
]

log = logging.getLogger(__name__)

_ADD_BLOCK = 65_536
_EXACT_BLOCK = 65_536
#: allowed sets at most this large are scored exactly (cheaper than an index search with a selector)
EXACT_FILTER_ROWS = 20_000


# ------------------------------------------------------------------------------------------ encoding


def _shard_path(shard_dir: Path, i: int) -> Path:
    return shard_dir / f"shard-{i:05d}.npy"


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _shard_ok(path: Path, rows: int, dim: int | None) -> bool:
    if not path.is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return arr.ndim == 2 and arr.shape[0] == rows and (dim is None or arr.shape[1] == dim)


def shard_ranges(n_rows: int, shard_rows: int) -> list[tuple[int, int, int]]:
    """``(shard number, first row, end row)`` of every encoding shard."""
    return [(i, start, min(start + shard_rows, n_rows)) for i, start in enumerate(range(0, n_rows, shard_rows))]


def prepare_shard_dir(shard_dir: Path, n_rows: int, *, key: dict[str, Any], shard_rows: int) -> None:
    """Keep the shards of an earlier run with the same ``key`` (resume); discard them otherwise."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    state_path = shard_dir / "state.json"
    state = {"key": key, "rows": n_rows, "shard_rows": shard_rows}
    previous = json.loads(state_path.read_text()) if state_path.is_file() else None
    if previous != state:
        if previous is not None:
            log.info("encoding settings or corpus changed: discarding %s", shard_dir)
        for old in shard_dir.glob("*.npy"):
            old.unlink()
        atomic_write_json(state_path, state)


def pending_shards(shard_dir: Path, n_rows: int, shard_rows: int) -> list[tuple[int, int, int]]:
    """The shard ranges whose file is missing or incomplete (after ``prepare_shard_dir``)."""
    return [(i, a, b) for i, a, b in shard_ranges(n_rows, shard_rows)
            if not _shard_ok(_shard_path(shard_dir, i), b - a, None)]


def write_shard(shard_dir: Path, i: int, vectors: np.ndarray) -> Path:
    """Save shard ``i`` atomically (float32)."""
    path = _shard_path(shard_dir, i)
    _save_npy_atomic(path, np.ascontiguousarray(vectors, dtype=np.float32))
    return path


def shard_paths(shard_dir: Path, n_rows: int, shard_rows: int) -> list[Path]:
    """Every shard file in row order; an error if one is missing or short."""
    paths = []
    for i, a, b in shard_ranges(n_rows, shard_rows):
        path = _shard_path(shard_dir, i)
        if not _shard_ok(path, b - a, None):
            raise IndexFormatError(f"{path}: encoding shard missing or incomplete; rerun the build to resume")
        paths.append(path)
    return paths


def encode_to_shards(
    shard_dir: Path,
    n_rows: int,
    texts_for: Callable[[int, int], Sequence[Any]],
    encode: Callable[[Sequence[Any]], np.ndarray],
    *,
    key: dict[str, Any],
    shard_rows: int,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Encode rows ``[0, n_rows)`` into shards, skipping shards a previous run finished for the same ``key``.

    ``texts_for(start, stop)`` returns the passages of those rows; ``encode`` turns them into vectors.
    """
    prepare_shard_dir(shard_dir, n_rows, key=key, shard_rows=shard_rows)
    paths, dim = [], None
    for i, start, stop in shard_ranges(n_rows, shard_rows):
        path = _shard_path(shard_dir, i)
        if _shard_ok(path, stop - start, dim):
            log.debug("shard %s already encoded", path.name)
        else:
            _save_npy_atomic(path, np.ascontiguousarray(encode(texts_for(start, stop)), dtype=np.float32))
        dim = dim or int(np.load(path, mmap_mode="r").shape[1])
        paths.append(path)
        if progress is not None:
            progress(stop - start)
    return paths


def merge_shards(paths: Sequence[Path], out: Path, n_rows: int, dim: int) -> None:
    """Stream ``.npy`` parts into one ``(n_rows, dim)`` float32 ``.npy`` at ``out`` (written, then renamed)."""
    tmp = out.with_name(f".{out.name}.tmp")
    merged = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_rows, dim))
    row = 0
    for path in paths:
        part = np.load(path, mmap_mode="r", allow_pickle=False)
        if part.ndim != 2 or part.shape[1] != dim or row + part.shape[0] > n_rows:
            del merged
            tmp.unlink(missing_ok=True)
            raise IndexFormatError(f"{path}: vectors of shape {part.shape} do not fit ({n_rows}, {dim})")
        merged[row : row + part.shape[0]] = part
        row += part.shape[0]
    if row != n_rows:
        raise IndexFormatError(f"encoded {row} vectors for {n_rows} rows; delete {out.parent} and rebuild")
    merged.flush()
    del merged
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out)


def load_vectors(path: Path, rows: int | None = None, dim: int | None = None) -> np.ndarray:
    """Memory-map an index's ``vectors.npy`` (float32, 2-D); a corrupt file is a one-line IndexFormatError
    (numpy's own message is not relayed: it suggests ``allow_pickle``, which must never be used here)."""
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise IndexFormatError(
            f"{path}: not a readable float32 .npy file ({type(exc).__name__}); the index is corrupt: "
            "run `medrag index verify`, then rebuild the index"
        ) from exc
    if vectors.ndim != 2 or vectors.dtype != np.float32 or (rows is not None and vectors.shape[0] != rows) \
            or (dim is not None and vectors.shape[1] != dim):
        raise IndexFormatError(
            f"{path}: vectors have shape {vectors.shape} and dtype {vectors.dtype}, expected float32 "
            f"({rows}, {dim}); the index is corrupt: rebuild it"
        )
    return vectors


# --------------------------------------------------------------------------------------------- faiss


def faiss_module() -> Any:
    return require("faiss", "faiss-cpu", "dense", "dense retrieval")


def resolve_faiss_device(requested: str, faiss: Any) -> int | None:
    """GPU number for ``cuda[:N]``, None for ``cpu``; a clear error when faiss cannot use a GPU."""
    if requested == "cpu":
        return None
    if not hasattr(faiss, "StandardGpuResources"):
        raise BackendUnavailableError(
            "faiss was installed without GPU support; pip install 'medrag[gpu]' (faiss-gpu-cu12) or use --device cpu"
        )
    n_gpus = faiss.get_num_gpus()
    gpu = int(requested.split(":", 1)[1]) if ":" in requested else 0
    if gpu >= n_gpus:
        raise BackendUnavailableError(f"device {requested!r} requested but faiss sees {n_gpus} GPU(s)")
    return gpu


_GPU_RESOURCES: dict[int, Any] = {}


def to_gpu(faiss: Any, index: Any, gpu: int) -> Any:
    """``index`` cloned onto GPU ``gpu`` (one ``StandardGpuResources`` per GPU, kept for the process).

    IVF-PQ uses float16 lookup tables (faiss needs them beyond 48 bytes per code); other indexes keep float32.
    """
    if gpu not in _GPU_RESOURCES:
        _GPU_RESOURCES[gpu] = faiss.StandardGpuResources()
    options = faiss.GpuClonerOptions()
    try:
        options.useFloat16 = isinstance(faiss.downcast_index(faiss.extract_index_ivf(index)), faiss.IndexIVFPQ)
    except RuntimeError:  # not an IVF index
        options.useFloat16 = False
    return faiss.index_cpu_to_gpu(_GPU_RESOURCES[gpu], gpu, index, options)


def _metric(faiss: Any, metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def _blocks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _new_index(faiss: Any, dim: int, config: FaissConfig, metric: str) -> Any:
    try:
        return faiss.index_factory(dim, config.factory, _metric(faiss, metric))
    except RuntimeError as exc:
        raise ConfigError(f"invalid faiss factory string {config.factory!r}: {str(exc).splitlines()[0]}") from exc


def train_sample_rows(n: int, config: FaissConfig) -> np.ndarray:
    """The rows a trained index learns from: ``train_sample`` of ``n`` drawn with ``seed`` (all when fewer)."""
    take = min(config.train_sample, n)
    if take >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(config.seed).choice(n, size=take, replace=False))


def train_faiss(vectors: np.ndarray, config: FaissConfig, metric: str) -> Any:
    """An empty CPU index of ``config.factory``, trained on a seeded sample of ``vectors`` when it needs it
    (on the GPU for ``config.device`` CUDA)."""
    faiss = faiss_module()
    index = _new_index(faiss, vectors.shape[1], config, metric)
    if index.is_trained:
        return index
    gpu = resolve_faiss_device(config.device, faiss)
    if gpu is not None:
        index = to_gpu(faiss, index, gpu)
    sample = train_sample_rows(vectors.shape[0], config)
    log.info("training faiss %s on %d vectors", config.factory, sample.size)
    try:
        index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    except RuntimeError as exc:
        reason = str(exc).split("failed:", 1)[-1].strip().splitlines()[0]
        raise ConfigError(f"faiss {config.factory!r} cannot be trained on {sample.size} vectors ({reason}); "
                          "use fewer IVF lists / PQ bits or a larger train_sample") from exc
    return faiss.index_gpu_to_cpu(index) if gpu is not None else index


def build_faiss(
    vectors: np.ndarray, config: FaissConfig, metric: str, *, progress: Callable[[int], None] | None = None,
    rows: tuple[int, int] | None = None, trained: Any = None,
) -> Any:
    """A CPU FAISS index over ``vectors`` (or only ``rows`` = (start, stop) of them), built on the GPU when
    ``config.device`` is CUDA. ``trained``: an already trained empty index to fill (shards share one)."""
    faiss = faiss_module()
    index = faiss.clone_index(trained) if trained is not None else train_faiss(vectors, config, metric)
    gpu = resolve_faiss_device(config.device, faiss)
    if gpu is not None:
        index = to_gpu(faiss, index, gpu)
    first, last = rows if rows is not None else (0, vectors.shape[0])
    for start, stop in _blocks(last - first, _ADD_BLOCK):
        index.add(np.ascontiguousarray(vectors[first + start: first + stop], dtype=np.float32))
        if progress is not None:
            progress(stop - start)
    return faiss.index_gpu_to_cpu(index) if gpu is not None else index


def _set_search_defaults(faiss: Any, index: Any, config: FaissConfig) -> None:
    try:
        faiss.extract_index_ivf(index).nprobe = config.nprobe
    except (RuntimeError, AttributeError):
        pass
    base = faiss.downcast_index(index)
    if hasattr(base, "hnsw"):
        base.hnsw.efSearch = config.ef_search


def load_faiss(path: Path, config: FaissConfig, *, mmap: bool = True) -> Any:
    """Read a saved index (memory-mapped where FAISS supports it), on the GPU for ``device="cuda"``."""
    faiss = faiss_module()
    flags = (faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY) if mmap else 0
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError:
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexFormatError(f"{path}: FAISS index is unreadable; rebuild the index") from exc
    _set_search_defaults(faiss, index, config)
    gpu = resolve_faiss_device(config.device, faiss)
    if gpu is not None:
        index = to_gpu(faiss, index, gpu)
    return index


# -------------------------------------------------------------------------------------------- search


def _to_scores(distances: np.ndarray, metric: str) -> np.ndarray:
    """Higher is better: inner products as they are, L2 distances negated."""
    return distances if metric == "ip" else -distances


def row_scores(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """Exact scores of ``rows`` for one query vector (same scale as the index's scores)."""
    if rows.size == 0:
        return np.zeros(0, dtype=np.float32)
    order = np.argsort(rows)
    block = np.asarray(vectors[rows[order]], dtype=np.float32)
    if metric == "ip":
        vals = block @ query
    else:
        vals = -((block - query) ** 2).sum(axis=1)
    out = np.empty(rows.size, dtype=np.float32)
    out[order] = vals
    return out


def exact_search(
    vectors: np.ndarray, rows: np.ndarray, query: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` among ``rows`` (block-wise over the memmap); ties to the lower row."""
    best_rows, best_scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    for start, stop in _blocks(rows.size, _EXACT_BLOCK):
        part = rows[start:stop]
        scores = row_scores(vectors, part, query, metric)
        cand_rows = np.concatenate([best_rows, part])
        cand_scores = np.concatenate([best_scores, scores])
        pick, vals = topk(cand_scores, k)
        best_rows, best_scores = cand_rows[pick], vals
    order = np.lexsort((best_rows, -best_scores.astype(np.float64)))
    return best_rows[order].astype(np.int64), best_scores[order].astype(np.float32)


class DenseIndex:
    """A FAISS index plus the vector memmap, searched by query vectors."""

    def __init__(self, index: Any, vectors: np.ndarray, metric: str, config: FaissConfig) -> None:
        self.index = index
        self.vectors = vectors
        self.metric = metric
        self.config = config
        self.on_gpu = config.device != "cpu"

    @property
    def num_docs(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, queries: np.ndarray, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Top-``k`` rows and scores per query (no filter)."""
        k_eff = min(k, self.num_docs)
        if k_eff == 0:
            empty = [np.zeros(0, dtype=np.int64)] * len(queries)
            return empty, [np.zeros(0, dtype=np.float32)] * len(queries)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        dist, ids = self.index.search(queries, self._fetch(k_eff))
        scores = _to_scores(dist, self.metric)
        rows_out, scores_out = [], []
        for r, s, q in zip(ids, scores, queries, strict=True):
            r, s = self._rerank(*_clean(r, s), q, k_eff)
            rows_out.append(r)
            scores_out.append(s)
        return rows_out, scores_out

    def _fetch(self, k: int) -> int:
        """Candidates to ask the index for: ``k``, or ``k * rerank`` when re-ranking exactly."""
        return min(self.num_docs, k * self.config.rerank) if self.config.rerank > 1 else k

    def _rerank(self, rows: np.ndarray, scores: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` of sorted candidates; with ``rerank``, by exact scores from the vector memmap."""
        if self.config.rerank > 1 and rows.size:
            scores = row_scores(self.vectors, rows, query, self.metric)
            order = np.lexsort((rows, -scores.astype(np.float64)))
            rows, scores = rows[order], scores[order]
        return rows[:k], scores[:k]

    def search_filtered(self, query: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` among rows where ``mask`` is True; exactly ``min(k, mask.sum())`` results."""
        allowed = np.flatnonzero(mask)
        want = min(k, allowed.size)
        if want == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if allowed.size <= EXACT_FILTER_ROWS:
            return exact_search(self.vectors, allowed, query, want, self.metric)
        rows: Any
        scores: Any
        rows, scores = self._selector_search(query, want, mask) if not self.on_gpu else (None, None)
        if rows is None:
            rows, scores = self._overfetch(query, want, mask)
        if rows.size < want:  # an approximate index missed allowed rows: fall back to exact scoring
            return exact_search(self.vectors, allowed, query, want, self.metric)
        return rows, scores

    def _selector_search(self, query: np.ndarray, k: int, mask: np.ndarray) -> tuple[Any, Any]:
        faiss = faiss_module()
        bitmap = np.packbits(mask.astype(np.uint8), bitorder="little")
        selector = faiss.IDSelectorBitmap(mask.size, faiss.swig_ptr(bitmap))
        params = _params_with_selector(faiss, self.index, selector, self.config)
        if params is None:
            return None, None
        try:
            dist, ids = self.index.search(query[None, :].astype(np.float32), self._fetch(k), params=params)
        except RuntimeError:
            return None, None
        return self._rerank(*_clean(ids[0], _to_scores(dist[0], self.metric)), query, k)

    def _overfetch(self, query: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fetch = k * 4
        while True:
            fetch = min(fetch, self.num_docs)
            dist, ids = self.index.search(query[None, :].astype(np.float32), fetch)
            rows, scores = _clean(ids[0], _to_scores(dist[0], self.metric))
            keep = mask[rows]
            if keep.sum() >= self._fetch(k) or fetch >= self.num_docs:
                return self._rerank(rows[keep], scores[keep], query, k)
            fetch *= 4


def _clean(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ids >= 0
    rows, vals = ids[keep].astype(np.int64), scores[keep].astype(np.float32)
    order = np.lexsort((rows, -vals.astype(np.float64)))
    return rows[order], vals[order]


def _params_with_selector(faiss: Any, index: Any, selector: Any, config: FaissConfig) -> Any:
    base = faiss.downcast_index(index)
    if isinstance(base, (faiss.IndexPreTransform, faiss.IndexShards)):
        return None  # selectors do not pass through pre-transforms or shards (local ids): over-fetch instead
    if hasattr(base, "hnsw"):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=config.ef_search)
    if hasattr(base, "nprobe") and hasattr(base, "invlists"):
        return faiss.SearchParametersIVF(sel=selector, nprobe=config.nprobe)
    return faiss.SearchParameters(sel=selector)
