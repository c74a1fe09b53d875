"""The ``medrag`` command line.

Subcommands live next to their stage (``medrag/ingest/cli.py`` …) and are imported only when invoked, so
``medrag --help`` and ``medrag corpus …`` never import torch, faiss or an LLM runtime.

Every MedragError becomes a one-line ``Error: …`` message on stderr and a non-zero exit code; there is no
traceback for user errors (``-v`` / ``MEDRAG_DEBUG=1`` shows one for debugging).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from ._version import __version__
from .errors import MedragError

# name -> "module:attribute"; the attribute is a click.Command or click.Group
_COMMANDS: dict[str, str] = {
    "corpus": "medrag.ingest.cli:corpus",
    "index": "medrag.index.cli:index",
    "search": "medrag.retrieve.cli:search",
    "ask": "medrag.reason.cli:ask",
    "eval": "medrag.evaluation.cli:eval_group",
    "serve": "medrag.integrations.cli:serve",
    "mcp": "medrag.integrations.cli:mcp",
}

# group name -> commands defined in a higher layer and attached here (``index verify`` opens the index for search)
_ATTACHED: dict[str, tuple[str, ...]] = {
    "index": ("medrag.retrieve.cli:verify_cmd",),
}

_SHORT_HELP: dict[str, str] = {
    "corpus": "Ingest PubMed, PMC/StatPearls, textbooks, guidelines, BEIR/R2MED jsonl into Arrow corpora.",
    "index": "Build and inspect hybrid BM25 + dense (FAISS) indexes.",
    "search": "Search an index (hybrid, bm25 or dense).",
    "ask": "Answer a medical question with retrieved, cited evidence (follow-up reasoning loop).",
    "eval": "Evaluate retrieval (R2MED, BEIR) and RAG/QA (MedRGB, MIRAGE, PubMedQA).",
    "serve": "Serve search and ask over HTTP (FastAPI).",
    "mcp": "Run an MCP tool server (stdio) exposing search and ask.",
}


class UserError(click.ClickException):
    """A MedragError shown as one line, with the error's exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it per class; ours is per error


def _import_command(spec: str) -> click.Command:
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except MedragError as exc:
        raise UserError(str(exc), exc.exit_code) from exc
    command: click.Command = getattr(module, attr)
    return command


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            return self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, name: str) -> click.Command:
        command = _import_command(self._lazy[name])
        if isinstance(command, click.Group):
            for spec in _ATTACHED.get(name, ()):
                extra = _import_command(spec)
                if extra.name not in command.commands:
                    command.add_command(extra)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MedragError as exc:
            if os.environ.get("MEDRAG_DEBUG"):
                raise
            raise UserError(str(exc), exc.exit_code) from exc
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=LazyGroup, lazy=_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="medrag")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """medrag: medical retrieval-augmented reasoning.

    \b
    Typical flow:
      medrag corpus ingest guidelines --out corpora/guidelines
      medrag index build                      # embedded guideline corpus -> indexes/default
      medrag search "first-line anticoagulant in atrial fibrillation"
      medrag ask "Which anticoagulant for AF with CrCl 25 ml/min?"

    The offline default LLM is a tiny 270M base model: it cannot reason clinically, so `ask` shows the cited
    evidence instead of an unsupported answer. Real answers need an 8B medical reasoning model (--llm).
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if verbose > 1:
        os.environ.setdefault("MEDRAG_DEBUG", "1")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="medrag")


if __name__ == "__main__":  # pragma: no cover
    main()
