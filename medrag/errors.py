"""The MedragError hierarchy.

Library code raises these with a message a user can act on; the CLI prints ``str(error)`` on one line and
exits with ``exit_code`` (no traceback). Anything that is not a MedragError is a bug.
"""

from __future__ import annotations

__all__ = [
    "MedragError",
    "ConfigError",
    "InputError",
    "CorpusError",
    "IndexFormatError",
    "QueryError",
    "LLMError",
    "BackendUnavailableError",
    "ContextOverflowError",
    "DependencyMissingError",
    "DownloadError",
    "DataNotFoundError",
    "EvaluationError",
]


class MedragError(Exception):
    """Base class of every error medrag raises on purpose."""

    exit_code = 1


class ConfigError(MedragError, ValueError):
    """A configuration value is invalid (unknown option, out-of-range parameter, bad spec string)."""

    exit_code = 2


class InputError(MedragError):
    """An input path is missing/unreadable or names an unknown source."""

    exit_code = 2


class CorpusError(MedragError):
    """A corpus directory is missing, incomplete, or fails verification."""


class IndexFormatError(MedragError):
    """An index directory is missing, corrupt, or does not match what it claims to be built from."""


class QueryError(MedragError, ValueError):
    """A search request is invalid (empty query, k <= 0, unknown filter)."""

    exit_code = 2


class LLMError(MedragError):
    """A language-model backend failed (timeout, bad response, generation error)."""


class BackendUnavailableError(LLMError):
    """A backend cannot be used here (no server, no GPU, model file missing)."""


class ContextOverflowError(LLMError):
    """A prompt does not fit the model's context window (``tokens`` needed, ``limit`` available).

    A request problem, not a backend failure: servers answer it with a 4xx that states the limit."""

    def __init__(self, message: str, *, tokens: int | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.tokens = tokens
        self.limit = limit

    def public_message(self) -> str:
        """The message without backend details (paths, URLs): what a remote client may see."""
        needed = f" needs {self.tokens} tokens;" if self.tokens is not None else ""
        limit = f" the model's context is {self.limit} tokens" if self.limit is not None else \
            " it exceeds the model's context window"
        return f"prompt too long:{needed}{limit}; ask a shorter question or use a smaller k / fewer rounds"


class DependencyMissingError(MedragError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" for {purpose}" if purpose else ""
        super().__init__(f"{package} is needed{what}: pip install 'medrag[{extra}]'")
        self.package = package
        self.extra = extra


class DownloadError(MedragError):
    """A download failed or did not verify (checksum mismatch, HTTP error)."""


class DataNotFoundError(MedragError):
    """A benchmark or data set is not where it was expected; the message says where to get it."""

    exit_code = 2


class EvaluationError(MedragError):
    """An evaluation could not be run or scored."""
