"""``adapt_encoder``: domain adaptation of the dense encoder on a corpus, without relevance labels.

Pairs come from the corpus itself (``corpus_pairs``): a document's title is a "query" for each of its chunks,
and a section heading that names one document only (not "Methods" or "Dosing", which many share) is a query
for its chunk. sentence-transformers' ``MultipleNegativesRankingLoss`` trains the encoder to rank each pair's
passage above the other passages of its batch (in-batch negatives), optionally plus one BM25-mined hard negative
per pair (the best BM25 hit for the anchor from another document).

The output folder is a sentence-transformers model (``medrag index build --dense-model OUT`` loads it) plus
``adapt.json``, its manifest (base model, data fingerprint, steps, seed, config, loss curve), written last.
Training checkpoints to ``OUT/checkpoint/`` every ``checkpoint_every`` steps; a run stopped by ``max_minutes``
or interrupted resumes there when started again with the same corpus and config (model weights and step are
restored; the optimizer's moment estimates restart). The batch order depends only on ``seed`` and the step.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import AdaptConfig, BM25Config, config_to_dict
from ..errors import ConfigError, DependencyMissingError, IndexFormatError
from ..ingest.store import Corpus
from ..manifest import atomic_write_json, fingerprint
from .bm25 import BM25Index, build_bm25
from .build import row_batches
from .encoder import default_model_path, quiet_weight_loading

__all__ = ["ADAPT_MANIFEST", "Pair", "corpus_pairs", "batch_indices", "adapt_encoder"]

log = logging.getLogger(__name__)

ADAPT_MANIFEST = "adapt.json"
CHECKPOINT = "checkpoint"
_STATE = "state.json"
_FORMAT = 1


@dataclass(frozen=True)
class Pair:
    """One training pair: ``anchor`` (a title or heading) should retrieve ``positive`` (a chunk of ``doc_id``)."""

    anchor: str
    positive: str
    doc_id: str


def corpus_pairs(titles: Sequence[str], sections: Sequence[str], texts: Sequence[str],
                 doc_ids: Sequence[str]) -> list[Pair]:
    """(title -> chunk text) for every chunk with a title, (heading -> chunk text) for headings that belong to
    one document only and differ from its title. Columns are the corpus's, row-aligned; duplicates dropped."""
    heading_docs: dict[str, set[str]] = {}
    for section, doc in zip(sections, doc_ids, strict=True):
        if section and section.strip():
            heading_docs.setdefault(section.strip().lower(), set()).add(doc)
    seen: set[tuple[str, str]] = set()
    pairs: list[Pair] = []
    for title, section, text, doc in zip(titles, sections, texts, doc_ids, strict=True):
        text, title, section = (text or "").strip(), (title or "").strip(), (section or "").strip()
        if not text:
            continue
        anchors = [title] if title and title != text else []
        if section and section.lower() != title.lower() and len(heading_docs[section.lower()]) == 1:
            anchors.append(section)
        for anchor in anchors:
            if (anchor, text) not in seen:
                seen.add((anchor, text))
                pairs.append(Pair(anchor, text, doc))
    return pairs


def batch_indices(n_pairs: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Pair indices of optimizer step ``step``: epochs are seeded permutations, cut into whole batches."""
    per_epoch = max(1, n_pairs // batch_size)
    epoch, pos = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_pairs)
    return order[pos * batch_size:(pos + 1) * batch_size]


def _sample(pairs: list[Pair], max_pairs: int, seed: int) -> list[Pair]:
    if len(pairs) <= max_pairs:
        return pairs
    keep = np.sort(np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False))
    return [pairs[i] for i in keep.tolist()]


def _read_pairs(corpus: Corpus) -> list[Pair]:
    cols = {name: corpus.column(name).to_pylist() for name in ("title", "section", "text", "doc_id")}
    return corpus_pairs(cols["title"], cols["section"], cols["text"], cols["doc_id"])


def _hard_negatives(pairs: list[Pair], corpus: Corpus, work: Path) -> list[str | None]:
    """Per pair, the text of the best BM25 hit for its anchor that belongs to another document."""
    config = BM25Config()
    build_bm25(row_batches(corpus, config.fields, 0, corpus.num_rows), work / "bm25", config)
    bm25 = BM25Index.load(work / "bm25", config)
    doc_col = corpus.column("doc_id")
    negatives: list[str | None] = []
    for pair in pairs:
        rows, _ = bm25.search(pair.anchor, 8)
        docs = doc_col.take(rows).to_pylist() if len(rows) else []
        other = [int(r) for r, d in zip(rows.tolist(), docs, strict=True) if d != pair.doc_id]
        negatives.append(corpus.chunk(other[0]).text if other else None)
    return negatives


def _base_name(config: AdaptConfig) -> str:
    if config.base_model:
        return config.base_model

    return default_model_path()


def _run_key(config: AdaptConfig, data_fp: str) -> str:
    """What a checkpoint must match to be resumed: everything but the stopping rules."""
    return fingerprint({"config": config_to_dict(replace(config, steps=1, max_minutes=None)), "data": data_fp})


def _load_model(path: str) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DependencyMissingError("sentence-transformers", "dense", "medrag index adapt") from exc

    try:
        with quiet_weight_loading():
            return SentenceTransformer(path, device="cpu")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load base model {path!r} ({type(exc).__name__}); give a local folder") from exc


def _resume_point(out: Path, key: str) -> tuple[int, list[float]]:
    state_path = out / CHECKPOINT / _STATE
    if not state_path.is_file():
        return 0, []
    state = json.loads(state_path.read_text(encoding="utf-8"))
    if state.get("key") != key:
        raise ConfigError(f"{out / CHECKPOINT}: checkpoint of another corpus or config; delete it or use another --out")
    return int(state["step"]), list(state.get("loss", []))


def _save_checkpoint(model: Any, out: Path, key: str, step: int, losses: list[float]) -> None:
    target = out / CHECKPOINT
    tmp = out / f"{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    atomic_write_json(tmp / _STATE, {"key": key, "step": step, "loss": losses})
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then linear decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _train(model: Any, pairs: list[Pair], negatives: list[str | None] | None, config: AdaptConfig, out: Path,
           key: str, progress: bool) -> tuple[int, list[float], str]:
    import torch
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    model.max_seq_length = config.max_seq_length
    start, losses = _resume_point(out, key)
    if start:
        model = _load_model(str(out / CHECKPOINT))
        model.max_seq_length = config.max_seq_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=config.scale)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes else math.inf
    bar = tqdm(total=config.steps, initial=start, desc="adapt", unit="step", file=sys.stderr, disable=not progress)
    model.train()
    step, stopped = start, "steps"
    while step < config.steps:
        if time.monotonic() >= deadline:
            stopped = "time"
            break
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * _lr_factor(step, config.warmup_steps, config.steps)
        idx = batch_indices(len(pairs), config.batch_size, config.seed, step).tolist()
        columns = [[pairs[i].anchor for i in idx], [pairs[i].positive for i in idx]]
        if negatives is not None:
            columns.append([negatives[i] or pairs[(i + 1) % len(pairs)].positive for i in idx])
        tokenize = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers >= 6: preprocess
        features = [tokenize(col) for col in columns]
        value = loss_fn(features, None)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(float(value.detach()), 5))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if step % config.checkpoint_every == 0 and step < config.steps:
            _save_checkpoint(model, out, key, step, losses)
    bar.close()
    model.eval()
    if stopped == "time":
        _save_checkpoint(model, out, key, step, losses)
    return step, losses, stopped


def adapt_encoder(corpora: Sequence[str | Path], out: str | Path, config: AdaptConfig | None = None, *,
                  progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``config.base_model`` on ``corpora`` into the model folder ``out``; returns its manifest.

    An ``out`` that already holds a finished model of the same base, data and config is returned as is.
    """
    config = config or AdaptConfig()
    out = Path(out)
    corpus = Corpus.open_many([Path(c) for c in corpora])
    pairs = _sample(_read_pairs(corpus), config.max_pairs, config.seed)
    if len(pairs) < config.batch_size:
        raise ConfigError(f"only {len(pairs)} training pairs in the corpus (titles/headings); need at least "
                          f"--batch-size {config.batch_size}")
    base = _base_name(config)
    data_fp = fingerprint({"corpora": list(corpus.fingerprints), "pairs": len(pairs), "max_pairs": config.max_pairs})
    key = _run_key(config, data_fp)
    done = _finished(out, key, config.steps)
    if done is not None:
        return done
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    negatives = _hard_negatives(pairs, corpus, out / ".work") if config.hard_negatives else None
    model = _load_model(base)
    steps, losses, stopped = _train(model, pairs, negatives, config, out, key, progress)
    if stopped == "time":
        log.warning("stopped by --max-minutes after %d of %d steps; run again to resume", steps, config.steps)
    model.save(str(out))
    manifest = {
        "kind": "medrag-adapted-encoder", "format_version": _FORMAT, "key": key,
        "base_model": config.base_model or "all-MiniLM-L6-v2 (bundled)", "base_model_path": base,
        "data": {"corpora": list(corpus.fingerprints), "rows": corpus.num_rows, "pairs": len(pairs),
                 "hard_negatives": config.hard_negatives, "fingerprint": data_fp},
        "steps": steps, "target_steps": config.steps, "stopped_by": stopped, "seed": config.seed,
        "config": config_to_dict(config), "loss": _loss_summary(losses), "seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(out / ADAPT_MANIFEST, manifest)
    if stopped == "steps":
        shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
        shutil.rmtree(out / ".work", ignore_errors=True)
    return manifest


def _finished(out: Path, key: str, steps: int) -> dict[str, Any] | None:
    path = out / ADAPT_MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("kind") != "medrag-adapted-encoder":
        raise IndexFormatError(f"{path}: not an adapted-encoder manifest")
    if manifest.get("key") == key and manifest.get("stopped_by") == "steps" and manifest.get("steps") == steps:
        return manifest
    if manifest.get("key") != key:
        raise ConfigError(f"{out}: holds a model adapted with another corpus or config; use another --out")
    path.unlink()  # same run, more steps or minutes: resume from the checkpoint
    return None


def _loss_summary(losses: list[float]) -> dict[str, Any]:
    """First/last window means and the curve thinned to at most 50 points."""
    if not losses:
        return {"first": None, "last": None, "curve": []}
    w = max(1, min(20, len(losses) // 5))
    stride = max(1, len(losses) // 50)
    return {"first": round(float(np.mean(losses[:w])), 4), "last": round(float(np.mean(losses[-w:])), 4),
            "curve": losses[::stride]}

