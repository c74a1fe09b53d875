"""``load_index``: open an index directory and compose its ``HybridRetriever`` from the manifest."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from ..config import FusionConfig, IndexConfig
from ..errors import ConfigError, IndexFormatError
from ..index import DEFAULT_INDEX
from ..index.bm25 import BM25Index
from ..index.manifest import IndexManifest, check_files, check_versions, read_index_manifest, resolve_corpora
from .hybrid import HybridRetriever
from .legs import BM25Leg, DenseLeg
from .rerank import CrossEncoderReranker
from .stages import CandidateGenerator, Reranker

__all__ = ["load_index"]


def _on_device(config: IndexConfig, device: str) -> IndexConfig:
    if device == "cpu":
        return config
    legs = tuple(dataclasses.replace(leg, encoder=dataclasses.replace(leg.encoder, device=device),
                                     faiss=dataclasses.replace(leg.faiss, device=device)) for leg in config.legs)
    return dataclasses.replace(
        config,
        encoder=dataclasses.replace(config.encoder, device=device),
        faiss=dataclasses.replace(config.faiss, device=device),
        legs=legs,
        rerank=dataclasses.replace(config.rerank, device=device) if config.rerank else None,
    )


def _legs(root: Path, manifest: IndexManifest, config: IndexConfig,
          threads: int | None = None) -> tuple[list[CandidateGenerator], list[float]]:
    """The legs the manifest describes, in fusion order, and their fusion weights."""
    bm25 = BM25Index.load(root / manifest.bm25.dir, config.bm25)
    bm25.threads = threads
    legs: list[CandidateGenerator] = [BM25Leg(bm25)]
    weights = [config.fusion.weights[0]]
    if manifest.dense is not None:
        legs.append(DenseLeg(root, manifest.dense, config.encoder, config.faiss))
        weights.append(config.fusion.weights[1])
    for leg in config.legs:
        legs.append(DenseLeg(root, manifest.leg(leg.name), leg.encoder, leg.faiss, name=leg.name))
        weights.append(leg.weight)
    return legs, weights


def load_index(
    path: str | Path = DEFAULT_INDEX,
    *,
    mode: str = "hybrid",
    device: str = "cpu",
    verify: bool = False,
    fusion: FusionConfig | None = None,
    reranker: Reranker | None = None,
    threads: int | None = None,
    rows: Literal["mmap", "memory"] = "mmap",
) -> HybridRetriever:
    """Open an index directory (memory-mapped; never writes) and return its ``HybridRetriever``.

    ``mode``: ``"hybrid"`` (every leg, fused), ``"bm25"``, ``"dense"`` (the first dense leg) or a leg's name.

    Validates the manifest, file sizes (every sha256 with ``verify=True``) and the corpus fingerprints.
    ``device="cuda"`` runs the query encoders and FAISS on the GPU. ``fusion`` overrides the stored defaults;
    ``reranker`` re-scores the top rows of every search. ``threads``: the cores a ``batch_search`` scores BM25
    on (None: every core this process may use; 1: the calling thread only). ``rows``: where hits are read
    from — ``"mmap"`` decodes the k rows of each answer from the memory-mapped shards (little RAM: the default),
    ``"memory"`` decodes every row once at load and keeps them as Python objects (faster per query at small
    and mid sizes; costs load time and RAM, see docs/scaling.md).
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
    if rows not in ("mmap", "memory"):
        raise ConfigError(f"rows must be 'mmap' or 'memory', got {rows!r}")
    root = Path(path)
    manifest = read_index_manifest(root)
    check_versions(root, manifest)
    check_files(root, manifest, verify=verify)
    corpus = resolve_corpora(root, manifest, verify=verify)
    config = _on_device(manifest.config, device)
    legs, weights = _legs(root, manifest, config, threads)
    bm25 = legs[0]
    if isinstance(bm25, BM25Leg) and bm25.index.num_docs != corpus.num_rows:
        raise IndexFormatError(f"{root}: BM25 holds {bm25.index.num_docs} documents, the corpus {corpus.num_rows}")
    if rows == "memory":
        corpus.load_rows()
    if reranker is None and config.rerank is not None:
        reranker = CrossEncoderReranker(config.rerank)
    return HybridRetriever(root, manifest, corpus, legs, weights, fusion or config.fusion, mode, reranker)
