"""Small helpers shared by the stage CLIs: JSON output, progress bars, consoles."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import click

T = TypeVar("T")

__all__ = ["json_option", "emit_json", "progress", "stderr_console", "stdout_console"]

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout (nothing else)."
)


def emit_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (UTF-8, no ASCII escaping). Text that is not valid Unicode (lone
    surrogates from undecodable bytes) is written as ``\\udcff`` escapes, so the output is always valid JSON."""
    text = json.dumps(obj, ensure_ascii=False, indent=2, default=_default)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True, indent=2, default=_default)
    click.echo(text)


def _default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def stderr_console() -> Any:
    """A rich console on stderr (progress, tables meant for humans)."""
    from rich.console import Console

    return Console(stderr=True)


def stdout_console() -> Any:
    from rich.console import Console

    return Console()


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it",
             disable: bool | None = None) -> Iterator[T]:
    """A tqdm progress bar on stderr, hidden when stderr is not a terminal (unless forced)."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = not sys.stderr.isatty()
    yield from tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr)
