"""Shared helpers of the per-stage configs.

Configs are plain values: they validate in ``__post_init__`` (raising ConfigError), serialise with
``to_dict`` into manifests/results, and never sniff model names — pooling, prefixes, metric and chat
behaviour are stated here explicitly.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["cache_root", "config_to_dict", "jsonable"]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass; tuples become lists."""
    return jsonable(asdict(cfg))


def jsonable(value: Any) -> Any:
    """``value`` with every tuple, at any depth, turned into a list (as JSON reads it back)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def cache_root() -> Path:
    """Where medrag keeps derived assets (ONNX exports, converted GGUF models): ``$MEDRAG_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/medrag``, else ``~/.cache/medrag``."""
    env = os.environ.get("MEDRAG_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "medrag"
