"""``CrossEncoderReranker``: a re-ranking stage scoring (query, passage) pairs with a sentence-transformers
``CrossEncoder`` (MedCPT-Cross-Encoder, bge-reranker-v2-m3 … see ``RERANK_PRESETS``).

The model loads on first use (torch is imported then, not when an index is opened); pairs go through it in
batches of ``RerankConfig.batch_size``; the rows come back sorted by its score (ties: lower row first).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import RerankConfig
from ..errors import DependencyMissingError, InputError
from ..index.encoder import quiet_weight_loading
from .fusion import rank
from .stages import Rows

__all__ = ["CrossEncoderReranker"]

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    """Implements ``medrag.retrieve.stages.Reranker`` with a sentence-transformers ``CrossEncoder``."""

    def __init__(self, config: RerankConfig) -> None:
        self.config = config
        self.depth = config.depth
        self._model: Any = None

    def __repr__(self) -> str:
        return f"CrossEncoderReranker({self.config.model!r}, depth={self.depth})"

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = _load_cross_encoder(self.config)
        return self._model

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """The model's score of each (query, text) pair (higher = more relevant)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        pairs = [(query, t) for t in texts]
        out = self.model.predict(pairs, batch_size=self.config.batch_size, show_progress_bar=False,
                                 convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)[:, 0]

    def rerank(self, query: str, rows: np.ndarray, texts: Sequence[str]) -> Rows:
        """The top ``depth`` of ``rows`` re-scored and re-sorted; rows past ``depth`` are dropped."""
        rows, texts = np.asarray(rows[: self.depth], dtype=np.int64), list(texts[: self.depth])
        return rank(rows, self.scores(query, texts))


def _load_cross_encoder(config: RerankConfig) -> Any:
    # sentence-transformers (torch) is imported here, on first use, to keep opening an index light
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as exc:
        raise DependencyMissingError("sentence-transformers", "dense", "re-ranking") from exc
    try:
        with quiet_weight_loading():
            return CrossEncoder(config.model, max_length=config.max_length, device=config.device,
                                trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        if "trust_remote_code" in str(exc) and not config.trust_remote_code:
            raise InputError(f"re-ranker {config.model!r} ships its own code: set trust_remote_code only if you "
                             "trust that repository") from exc
        where = "folder" if os.path.isdir(config.model) else "model (no local folder of that name; hub download failed)"
        raise InputError(f"cannot load re-ranker {config.model!r}: {type(exc).__name__} loading the {where}") from exc
