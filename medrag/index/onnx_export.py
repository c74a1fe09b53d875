"""An fp32 ONNX export of a local encoder folder, fused by onnxruntime's transformer optimizer, cached on disk.

``exported_model(folder)`` returns the path of ``model.onnx`` for a Hugging Face / sentence-transformers
folder: exported once with ``torch.onnx`` (``last_hidden_state`` output), optimised with
``onnxruntime.transformers.optimizer`` (Attention, SkipLayerNorm, BiasGelu fusion; BERT-type models), checked
against torch on a few texts (cosine >= ``MIN_COSINE``) and stored under ``cache_root()/onnx/<key>/`` with its
sha256. The key covers the folder's weights (name, size, mtime), the torch / transformers / onnxruntime versions
and ``EXPORT_VERSION``; a cached file whose sha256 no longer matches is never used (it is exported again).
``folder_layout`` reads the sentence-transformers modules (pooling, normalisation) from the folder's own files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import cache_root
from ..errors import InputError
from ..manifest import atomic_write_json, sha256_file

__all__ = ["EXPORT_VERSION", "MIN_COSINE", "ModelLayout", "cache_root", "exported_model", "folder_layout",
           "quiet_weight_loading"]

log = logging.getLogger(__name__)

#: bump when the export recipe changes (invalidates every cached export)
EXPORT_VERSION = 1
#: the export is refused unless every check text's vector is this close to torch's
MIN_COSINE = 0.999
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_CHECK_TEXTS = (
    "Metformin is the first-line therapy for type 2 diabetes.",
    "A randomised controlled trial of 1,204 adults found no difference in all-cause mortality at 12 months "
    "between early and delayed initiation of renal replacement therapy in critically ill patients.",
    "BRCA1",
)
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "config.json")


@dataclass(frozen=True)
class ModelLayout:
    """What a local encoder folder says about itself: pooling, a final Normalize module, its tokenizer."""

    folder: Path
    pooling: str
    normalize: bool
    tokenizer: Path
    model_type: str
    num_heads: int
    hidden_size: int



def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path}: {type(exc).__name__}") from exc


def _st_modules(folder: Path, default_pooling: str) -> tuple[str, bool]:
    """(pooling, normalize) from ``modules.json``; a folder without one is a plain transformer."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return default_pooling, False
    pooling, normalize = default_pooling, False
    for module in _read_json(modules_file):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Transformer":
            continue
        if kind == "Normalize":
            normalize = True
        elif kind == "Pooling":
            cfg = _read_json(folder / module.get("path", "") / "config.json")
            modes = [m for m in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens",
                                 "weightedmean_tokens", "lasttoken") if cfg.get(f"pooling_mode_{m}")]
            if modes not in (["cls_token"], ["mean_tokens"]):
                raise InputError(f"{folder}: pooling {modes} is not supported by the ONNX export (mean or cls only)")
            pooling = "cls" if modes == ["cls_token"] else "mean"
        else:
            raise InputError(f"{folder}: sentence-transformers module {kind!r} is not supported by the ONNX export")
    return pooling, normalize


def folder_layout(folder: str | Path, default_pooling: str = "mean") -> ModelLayout:
    """The layout of a local model folder; ``InputError`` (one line) when it cannot be exported."""
    root = Path(folder)
    if not (root / "config.json").is_file():
        raise InputError(f"ONNX export needs a local model folder with a config.json: {root}")
    tokenizer = root / "tokenizer.json"
    if not tokenizer.is_file():
        raise InputError(f"ONNX export needs the model's fast tokenizer file: {tokenizer} not found")
    config = _read_json(root / "config.json")
    pooling, normalize = _st_modules(root, default_pooling)
    return ModelLayout(root, pooling, normalize, tokenizer, str(config.get("model_type", "")),
                       int(config.get("num_attention_heads", 0)), int(config.get("hidden_size", 0)))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "onnxruntime", "onnx"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def _source_key(layout: ModelLayout) -> dict[str, Any]:
    files = {}
    for name in _WEIGHTS:
        path = layout.folder / name
        if path.is_file():
            stat = path.stat()
            files[name] = [stat.st_size, stat.st_mtime_ns]
    return {"folder": str(layout.folder.resolve()), "files": files, "versions": _versions(),
            "export_version": EXPORT_VERSION}


def _valid(model: Path, meta: Path, key: dict[str, Any]) -> bool:
    if not (model.is_file() and meta.is_file()):
        return False
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if info.get("key") != key:
        return False
    if info.get("sha256") != sha256_file(model):
        log.warning("cached ONNX export %s does not match its recorded sha256: exporting again", model)
        return False
    return True


def exported_model(layout: ModelLayout) -> Path:
    """The cached, checksum-verified optimised export of ``layout.folder`` (made now when missing or stale)."""
    key = _source_key(layout)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    where = cache_root() / "onnx" / digest
    model, meta = where / "model.onnx", where / "model.json"
    if _valid(model, meta, key):
        return model
    where.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s to ONNX once (cached in %s)", layout.folder, where)
    with _temporary(where, ".onnx") as raw, _temporary(where, ".onnx") as optimised:
        _export(layout, raw)
        _optimise(layout, raw, optimised)
        cosine = _check(layout, optimised)
        optimised.chmod(0o644)  # mkstemp made it private; it is a plain cache file
        optimised.replace(model)
    atomic_write_json(meta, {"key": key, "sha256": sha256_file(model), "min_cosine_vs_torch": cosine})
    return model


@contextlib.contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' per-tensor "Loading weights" bar (noise on every CLI call); restore it after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _temporary(where: Path, suffix: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(dir=where, suffix=suffix)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _torch_model(layout: ModelLayout) -> Any:
    from transformers import AutoModel

    with quiet_weight_loading():
        return AutoModel.from_pretrained(str(layout.folder), attn_implementation="eager").eval()


def _export(layout: ModelLayout, path: Path) -> None:
    import torch

    bert = _torch_model(layout)

    class _Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    sample = tuple(torch.ones(2, 16, dtype=torch.long) for _ in _INPUTS)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    with torch.inference_mode(), warnings_quiet():
        torch.onnx.export(_Hidden(), sample, str(path), input_names=list(_INPUTS),
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)


@contextlib.contextmanager
def warnings_quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _optimise(layout: ModelLayout, raw: Path, out: Path) -> None:
    from onnxruntime.transformers import optimizer

    if layout.model_type != "bert" or not (layout.num_heads and layout.hidden_size):
        out.write_bytes(raw.read_bytes())  # onnxruntime's graph optimisations still apply at load
        return
    with warnings_quiet():
        model = optimizer.optimize_model(str(raw), model_type="bert", num_heads=layout.num_heads,
                                         hidden_size=layout.hidden_size, opt_level=1)
    log.info("ONNX fusion: %s", {k: v for k, v in model.get_fused_operator_statistics().items() if v})
    model.save_model_to_file(str(out))


def _check(layout: ModelLayout, path: Path) -> float:
    """Min cosine of the export's mean/cls-pooled vectors to torch's on ``_CHECK_TEXTS``; raises below bar."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(layout.tokenizer))
    tokenizer.enable_padding()
    tokenizer.enable_truncation(max_length=128)
    encs = tokenizer.encode_batch(list(_CHECK_TEXTS))
    feeds = {"input_ids": np.array([e.ids for e in encs], dtype=np.int64),
             "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
             "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64)}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)[0]
    with torch.inference_mode():
        want = _torch_model(layout)(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
    mask = feeds["attention_mask"][:, :, None].astype(np.float32)
    a, b = ((h * mask).sum(axis=1) for h in (got, want))
    cosine = float(((a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())
    if cosine < MIN_COSINE:
        raise InputError(f"ONNX export of {layout.folder} differs from torch (cosine {cosine:.5f} < {MIN_COSINE})")
    return cosine
