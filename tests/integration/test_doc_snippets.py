"""README and docs/ code blocks stay runnable (issue 15 item 13).

Python blocks: every block is checked by pyflakes for undefined names (the blocks of one file read as one
script, in order), then executed in order in a sandbox folder holding a tiny fixture index at
``indexes/default``, a guideline corpus at ``corpora/guidelines`` and a PubMed file, except blocks preceded by
``<!-- snippet: no-run (reason) -->`` (they need an LLM server, a GPU, a Ray cluster or a benchmark data set).
Bash blocks: every ``medrag …`` command names subcommands and options that exist.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
from pathlib import Path

import click
import pytest

from medrag.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?P<marker><!-- snippet: no-run[^>]*-->\s*\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)
#: optional extras a block may import; a block needing a missing one is skipped, not failed
_OPTIONAL = {"llama_index", "langchain_core", "faiss", "sentence_transformers", "ray", "fastapi", "mcp"}


def _blocks(path: Path, lang: str) -> list[tuple[int, str, bool]]:
    """``(line, code, runnable)`` of the ``lang`` blocks of a markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text[: m.start("code")].count("\n") + 1, m.group("code"), m.group("marker") is None)
            for m in _BLOCK.finditer(text) if m.group("lang") == lang]


def _python_docs() -> list[Path]:
    return [p for p in DOCS if _blocks(p, "python")]


@pytest.mark.parametrize("doc", _python_docs(), ids=lambda p: p.name)
def test_python_snippets_define_every_name(doc: Path) -> None:
    pyflakes_api = pytest.importorskip("pyflakes.api")
    from pyflakes.reporter import Reporter

    blocks = _blocks(doc, "python")
    script = "\n".join(code for _, code, _ in blocks)
    out, err = io.StringIO(), io.StringIO()
    pyflakes_api.check(script, doc.name, Reporter(out, err))
    problems = [line for line in (out.getvalue() + err.getvalue()).splitlines()
                if "undefined name" in line or "syntax" in line.lower() or "invalid" in line.lower()]
    assert not problems, f"{doc.name}: {problems}"


@pytest.fixture(scope="module")
def sandbox(integrations_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medrag.ingest.store import Corpus, write_corpus
    from medrag.ingest.synthetic import write_medline

    root = tmp_path_factory.mktemp("snippets")
    chunks = list(Corpus.open(integrations_index.parent / "corpus"))
    write_corpus(root / "corpora" / "guidelines", chunks, source="guidelines")
    shutil.copytree(integrations_index, root / "indexes" / "default")
    write_medline(root / "pubmed25n0001.xml.gz", 20, first_pmid=100, seed=1)
    return root


@pytest.mark.parametrize("doc", _python_docs(), ids=lambda p: p.name)
def test_python_snippets_run(doc: Path, sandbox: Path, tmp_path: Path) -> None:
    runnable = [(line, code) for line, code, run in _blocks(doc, "python") if run]
    if not runnable:
        pytest.skip(f"{doc.name}: every block needs a server, GPU or data set (marked no-run)")
    work = tmp_path / "work"
    shutil.copytree(sandbox, work, symlinks=True)
    namespace: dict[str, object] = {"__name__": "__snippet__"}
    cwd = Path.cwd()
    os.chdir(work)
    try:
        for line, code in runnable:
            try:
                exec(compile(code, f"{doc.name}:{line}", "exec"), namespace)  # noqa: S102 - the docs' own code
            except ModuleNotFoundError as exc:
                if (exc.name or "").split(".")[0] in _OPTIONAL:
                    pytest.skip(f"{doc.name}:{line} needs {exc.name}")
                raise
    finally:
        os.chdir(cwd)


def _commands(code: str) -> list[list[str]]:
    """The ``medrag …`` invocations of a bash block, as argument lists (after ``medrag``)."""
    found = []
    for raw in code.replace("\\\n", " ").splitlines():
        try:
            tokens = shlex.split(raw, comments=True)
        except ValueError:
            continue
        for i, token in enumerate(tokens):
            starts = i == 0 or tokens[i - 1] in ("&&", ";", "|", "||", "$") or re.fullmatch(r"\w+=\S*", tokens[i - 1])
            if token == "medrag" and starts:
                args = []
                for t in tokens[i + 1:]:
                    if t in ("&&", ";", "|", "||", ">", "2>", "&"):
                        break
                    args.append(t)
                found.append(args)
    return found


def _bash_commands() -> list[tuple[str, list[str]]]:
    return [(f"{doc.name}:{line}", args) for doc in DOCS for line, code, _ in _blocks(doc, "bash")
            for args in _commands(code)]


def test_bash_snippets_found() -> None:
    assert len(_bash_commands()) > 30  # the check below really covers the docs


@pytest.mark.parametrize(("where", "args"), _bash_commands(), ids=[w for w, _ in _bash_commands()])
def test_bash_snippets_use_existing_commands_and_options(where: str, args: list[str]) -> None:
    ctx = click.Context(cli, info_name="medrag")
    command: click.Command = cli
    rest = list(args)
    while rest and isinstance(command, click.Group):
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            break
        command, rest = sub, rest[1:]
        ctx = click.Context(command, info_name=command.name, parent=ctx)
    assert not isinstance(command, click.Group) or any(a.startswith("-") for a in rest), \
        f"{where}: `medrag {' '.join(args)}` names no command"
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"-h", "--help"}
    for token in rest:
        name = token.strip("[]").split("=", 1)[0]
        if re.fullmatch(r"--?[a-zA-Z][\w-]*", name):
            assert name in known, f"{where}: `medrag {' '.join(args)}`: {command.name} has no option {name}"
