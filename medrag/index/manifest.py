"""The index manifest: what an index was built from and with, and every file's size and sha256.

``manifest.json`` is written last and atomically. ``IndexManifest`` is its typed form: ``from_dict`` rejects
unknown keys and wrong types at every level, so a manifest is read in one place instead of by key paths all
over the code. Loading checks it cheaply (format version, library versions, file presence and sizes, corpus
fingerprints); ``verify=True`` also re-hashes every file. Nothing here writes on load.

Manifests written before ``versions`` was recorded load as they are (the version check is skipped).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, get_args

from .._version import __version__
from ..config import FusionConfig, IndexConfig, config_to_dict, index_config_from_dict, jsonable
from ..errors import ConfigError, IndexFormatError
from ..ingest.store import Corpus
from ..manifest import DIGEST_KEY, MANIFEST_NAME, read_manifest, sha256_file, write_manifest

__all__ = [
    "INDEX_FORMAT_VERSION",
    "IndexManifest",
    "CorpusRef",
    "FileRecord",
    "BM25Record",
    "DenseRecord",
    "library_versions",
    "check_versions",
    "corpus_refs",
    "file_records",
    "write_index_manifest",
    "read_index_manifest",
    "check_files",
    "resolve_corpora",
]

Metric = Literal["ip", "l2"]
VectorsSource = Literal["encoded", "precomputed"]

#: libraries whose files an index stores, by distribution names (the first installed one counts)
_READERS: dict[str, tuple[str, ...]] = {
    "bm25s": ("bm25s",),
    "faiss": ("faiss-cpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss-gpu", "faiss"),
}
#: recorded for provenance only (they shape the vectors, not the files' format)
_RECORDED: dict[str, tuple[str, ...]] = {
    "sentence-transformers": ("sentence-transformers",),
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime",),
    "numpy": ("numpy",),
}


def _record(cls: type, data: Any, where: str) -> dict[str, Any]:
    """``data`` checked as the fields of ``cls``: an object, no unknown keys, every required key present."""
    if not isinstance(data, Mapping):
        raise IndexFormatError(f"manifest {where} must be an object, got {type(data).__name__}; rebuild the index")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise IndexFormatError(f"manifest {where} has unknown key(s) {', '.join(unknown)} (written by a newer "
                               "medrag?); upgrade medrag or rebuild the index")
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise IndexFormatError(f"manifest {where} lacks {', '.join(missing)}; rebuild the index")
    return dict(data)


def _literal(value: Any, allowed: Any, where: str) -> Any:
    if value not in get_args(allowed):
        raise IndexFormatError(f"manifest {where} is {value!r}, expected one of {get_args(allowed)}; rebuild")
    return value


@dataclass(frozen=True)
class CorpusRef:
    """A corpus the index was built on: path relative to the index, absolute path, fingerprint, rows."""

    path: str
    absolute_path: str
    fingerprint: str
    rows: int
    source: str | None = None


@dataclass(frozen=True)
class FileRecord:
    size: int
    sha256: str


@dataclass(frozen=True)
class BM25Record:
    """The BM25 part: its folder, tokenizer spec, BM25Config as a dict and build statistics."""

    dir: str
    tokenizer: dict[str, Any]
    params: dict[str, Any]
    stats: dict[str, Any]


@dataclass(frozen=True)
class DenseRecord:
    """A dense leg: encoder (EncoderConfig as a dict), vectors file, FAISS record; ``name``/``dir`` for the
    extra legs (``legs``), absent for the main one (``dense``)."""

    encoder: dict[str, Any]
    dim: int
    metric: Metric
    vectors: str
    vectors_source: VectorsSource
    faiss: dict[str, Any]
    build_seconds: dict[str, Any]
    name: str | None = None
    dir: str | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str) -> DenseRecord:
        values = _record(cls, data, where)
        _literal(values["metric"], Metric, f"{where}.metric")
        _literal(values["vectors_source"], VectorsSource, f"{where}.vectors_source")
        if not isinstance(values["faiss"], Mapping) or not (values["faiss"].get("files") or values["faiss"].get("file")):
            raise IndexFormatError(f"manifest {where}.faiss names no FAISS file; rebuild the index")
        return cls(**values)


@dataclass(frozen=True)
class IndexManifest:
    """``manifest.json`` of an index, typed (see the module docstring)."""

    format_version: int
    medrag_version: str
    corpora: tuple[CorpusRef, ...]
    rows: int
    config: IndexConfig
    bm25: BM25Record
    dense: DenseRecord | None
    fusion: FusionConfig
    modes: tuple[str, ...]
    build: dict[str, Any]
    fingerprint: str
    files: dict[str, FileRecord]
    legs: tuple[DenseRecord, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    kind: Literal["index"] = "index"

    @classmethod
    def from_dict(cls, data: Any) -> IndexManifest:
        values = _record(cls, data, "")
        try:
            config = index_config_from_dict(values["config"])
            fusion_values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                             for k, v in values["fusion"].items()}
            fusion = FusionConfig(**fusion_values)
        except (ConfigError, TypeError, AttributeError) as exc:
            raise IndexFormatError(f"manifest config: {exc}; rebuild the index") from exc
        manifest = cls(
            format_version=values["format_version"],
            medrag_version=values["medrag_version"],
            corpora=tuple(CorpusRef(**_record(CorpusRef, c, "corpora[]")) for c in values["corpora"]),
            rows=values["rows"],
            config=config,
            bm25=BM25Record(**_record(BM25Record, values["bm25"], "bm25")),
            dense=DenseRecord.from_dict(values["dense"], "dense") if values["dense"] is not None else None,
            fusion=fusion,
            modes=tuple(values["modes"]),
            build=dict(values["build"]),
            fingerprint=values["fingerprint"],
            files={k: FileRecord(**_record(FileRecord, v, f"files[{k}]")) for k, v in values["files"].items()},
            legs=tuple(DenseRecord.from_dict(v, "legs[]") for v in values.get("legs", [])),
            versions=dict(values.get("versions", {})),
            kind=_literal(values.get("kind", "index"), Literal["index"], "kind"),
        )
        manifest.validate()
        return manifest

    def validate(self) -> None:
        """Cross-field checks: rows add up, every configured leg is present, the version is readable."""
        if sum(c.rows for c in self.corpora) != self.rows or not self.corpora:
            raise IndexFormatError(f"manifest rows {self.rows} differ from its corpora's; rebuild the index")
        if (self.dense is None) == self.config.dense:
            raise IndexFormatError("manifest dense part and config.dense disagree; rebuild the index")
        names = [leg.name for leg in self.legs]
        if names != [leg.name for leg in self.config.legs]:
            raise IndexFormatError(f"manifest dense legs {names} differ from its config's; rebuild the index")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = config_to_dict(self.config)
        out["fusion"] = config_to_dict(self.fusion)
        if not self.legs:
            out.pop("legs")
        for record in [out["dense"], *out.get("legs", [])]:
            for key in ("name", "dir"):
                if record is not None and record[key] is None:
                    record.pop(key)
        return jsonable(out)

    def leg(self, name: str) -> DenseRecord:
        for record in self.legs:
            if record.name == name:
                return record
        raise IndexFormatError(f"index has no dense leg {name!r}; rebuild it with that leg in its config")


def _installed(dists: Sequence[str]) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def library_versions(*, dense: bool) -> dict[str, str]:
    """Installed versions of the libraries an index's files and vectors come from (without importing them)."""
    wanted = {"bm25s": _READERS["bm25s"]}
    if dense:
        wanted.update({"faiss": _READERS["faiss"], **_RECORDED})
    found = {name: _installed(dists) for name, dists in wanted.items()}
    return {name: v for name, v in found.items() if v is not None}


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_versions(root: Path, manifest: IndexManifest) -> None:
    """Refuse an index whose files were written by a newer bm25s/faiss than the one installed (an older
    reader may lack the format features it needs); manifests without ``versions`` are not checked."""
    for name, dists in _READERS.items():
        wrote = manifest.versions.get(name)
        if wrote is None or (name == "faiss" and manifest.dense is None):
            continue
        have = _installed(dists)
        if have is not None and _release(have) < _release(wrote):
            raise IndexFormatError(
                f"{root}: index was written with {name} {wrote}, installed {name} {have} may not read it; "
                f"pip install '{dists[0]}>={wrote}' or rebuild the index"
            )


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


def write_index_manifest(index_dir: Path, body: dict[str, Any], files: Sequence[str]) -> IndexManifest:
    """Write ``manifest.json`` (last, atomically) from the build's ``body``; checked by ``IndexManifest``
    first, so a build never writes a manifest it could not read back."""
    data = {
        "kind": "index",
        "format_version": INDEX_FORMAT_VERSION,
        "medrag_version": __version__,
        "versions": library_versions(dense=body.get("dense") is not None),
        **body,
        "files": file_records(index_dir, files),
    }
    manifest = IndexManifest.from_dict(data)
    write_manifest(index_dir / MANIFEST_NAME, data)  # sealed with its own digest
    return manifest


def read_index_manifest(index_dir: str | Path) -> IndexManifest:
    root = Path(index_dir)
    if not root.exists():
        raise IndexFormatError(f"{root}: no such index; build one with `medrag index build`")
    data = read_manifest(root, kind="index", supported_versions=(INDEX_FORMAT_VERSION,), error=IndexFormatError)
    data.pop(DIGEST_KEY, None)  # checked by read_manifest; not part of the typed manifest
    try:
        return IndexManifest.from_dict(data)
    except IndexFormatError as exc:
        raise IndexFormatError(f"{root}: {exc}") from exc


def check_files(index_dir: Path, manifest: IndexManifest, *, verify: bool = False) -> None:
    """Every listed file exists with its recorded size; with ``verify`` its sha256 matches too."""
    for rel, record in manifest.files.items():
        path = index_dir / rel
        if not path.is_file():
            raise IndexFormatError(f"{index_dir}: file {rel} listed in {MANIFEST_NAME} is missing; rebuild")
        size = path.stat().st_size
        if size != record.size:
            raise IndexFormatError(
                f"{index_dir}: file {rel} is corrupt (size {size} bytes, manifest says {record.size}); rebuild"
            )
        if verify and sha256_file(path) != record.sha256:
            raise IndexFormatError(
                f"{index_dir}: file {rel} is corrupt (sha256 differs from the manifest); rebuild the index"
            )


def _locate(index_dir: Path, ref: CorpusRef) -> Path:
    for candidate in (index_dir / ref.path, Path(ref.absolute_path)):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise IndexFormatError(
        f"{index_dir}: corpus {ref.path} (also tried {ref.absolute_path}) not found; "
        "the index needs the corpus it was built from"
    )


def resolve_corpora(index_dir: Path, manifest: IndexManifest, *, verify: bool = False) -> Corpus:
    """Open the corpora the index was built from (memory-mapped) and check their fingerprints."""
    paths = [_locate(index_dir, ref) for ref in manifest.corpora]
    corpus = Corpus.open_many(paths, verify=verify)
    for ref, path, found in zip(manifest.corpora, paths, corpus.fingerprints, strict=True):
        if found != ref.fingerprint:
            raise IndexFormatError(
                f"{index_dir}: corpus {path} changed since the index was built "
                f"(fingerprint {found[:12]}…, index expects {ref.fingerprint[:12]}…); rebuild the index"
            )
    if corpus.num_rows != manifest.rows:
        raise IndexFormatError(
            f"{index_dir}: corpora hold {corpus.num_rows} rows, the index was built on {manifest.rows}"
        )
    return corpus
