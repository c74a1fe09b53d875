"""Unsupervised domain adaptation of the dense encoder (``medrag index adapt``)."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import _check

__all__ = ["AdaptConfig"]


@dataclass(frozen=True)
class AdaptConfig:
    """Fine-tune a sentence-transformers encoder on a corpus without relevance labels.

    Training pairs come from the corpus itself: (document title -> chunk text) and, where a chunk has a section
    heading other than the title, (heading -> chunk text). ``MultipleNegativesRankingLoss`` treats the other
    passages of a batch as negatives; ``hard_negatives`` adds, per pair, the best BM25 hit for the anchor that
    belongs to another document. ``base_model`` is a local folder or hub name (``None`` = the bundled
    all-MiniLM-L6-v2). Training stops after ``steps`` optimizer steps or ``max_minutes`` of wall time, whichever
    comes first, and saves a resumable checkpoint every ``checkpoint_every`` steps. ``max_pairs`` caps the pairs
    drawn (seeded) from a large corpus.
    """

    base_model: str | None = None
    steps: int = 500
    max_minutes: float | None = None
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_steps: int = 50
    scale: float = 20.0
    max_seq_length: int = 256
    hard_negatives: bool = False
    max_pairs: int = 100_000
    checkpoint_every: int = 100
    seed: int = 1234

    def __post_init__(self) -> None:
        _check(self.steps >= 1, f"adapt steps must be >= 1, got {self.steps}")
        _check(self.max_minutes is None or self.max_minutes > 0,
               f"adapt max_minutes must be > 0, got {self.max_minutes}")
        _check(self.batch_size >= 2, f"adapt batch_size must be >= 2 (in-batch negatives), got {self.batch_size}")
        _check(self.learning_rate > 0, f"adapt learning_rate must be > 0, got {self.learning_rate}")
        _check(self.warmup_steps >= 0, f"adapt warmup_steps must be >= 0, got {self.warmup_steps}")
        _check(self.scale > 0, f"adapt scale must be > 0, got {self.scale}")
        _check(self.max_seq_length >= 8, f"adapt max_seq_length must be >= 8, got {self.max_seq_length}")
        _check(self.max_pairs >= 2, f"adapt max_pairs must be >= 2, got {self.max_pairs}")
        _check(self.checkpoint_every >= 1, f"adapt checkpoint_every must be >= 1, got {self.checkpoint_every}")
