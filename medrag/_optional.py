"""Importing optional dependencies with an actionable error (``pip install 'medrag[extra]'``)."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import DependencyMissingError

__all__ = ["require"]


def require(module: str, package: str, extra: str, purpose: str) -> Any:
    """Import ``module`` or raise :class:`DependencyMissingError` naming ``package`` and the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyMissingError(package, extra, purpose) from exc
