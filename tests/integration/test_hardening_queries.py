"""Query text that is not valid UTF-8 (issue 15 item 7): a one-line error on the CLI and a QueryError in the
Python API (never a TypeError from the tokenizer), and ``--json`` output is always valid JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medrag.cli import cli
from medrag.errors import QueryError

ROOT = Path(__file__).resolve().parents[2]
BAD = ["gout \ud800 flare", "\udcff\udcfe", "sepsis \udfff"]


@pytest.fixture(scope="module")
def index(integrations_index: Path) -> Path:
    return integrations_index


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
@pytest.mark.parametrize("query", BAD)
def test_python_api_rejects_invalid_text(index: Path, mode: str, query: str) -> None:
    from medrag import load_index

    retriever = load_index(index, mode=mode)
    with pytest.raises(QueryError, match="not valid UTF-8"):
        retriever.search(query, k=3)
    with pytest.raises(QueryError, match="not valid UTF-8"):
        retriever.batch_search(["gout", query], k=3)


def _medrag(*args: str | bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "LC_ALL": "C.UTF-8"}
    return subprocess.run([sys.executable, "-m", "medrag.cli", *args], capture_output=True, env=env, cwd=cwd,
                          timeout=300)


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_cli_invalid_utf8_argument_is_one_line_error(index: Path, tmp_path: Path, mode: str) -> None:
    done = _medrag("search", b"gout \xff\xfe flare", "--index", str(index), "--mode", mode, "--json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == b""
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: query is not valid UTF-8"), lines


def test_cli_runner_lone_surrogate(index: Path) -> None:
    result = CliRunner().invoke(cli, ["search", "gout \ud800", "--index", str(index), "--mode", "dense"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().startswith("Error: query is not valid UTF-8")


def test_json_output_is_valid_json_with_undecodable_paths(index: Path, tmp_path: Path, fixtures_dir: Path) -> None:
    """A path given as undecodable bytes ends up in ``--json`` output: the output is still valid UTF-8 JSON."""
    import shutil

    odd = os.fsencode(tmp_path) + b"/index-\xff"
    shutil.copytree(index, os.fsdecode(odd))
    done = _medrag("index", "info", odd, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.decode("utf-8"))  # strict: raw 0xFF bytes would fail here
    assert info["path"].endswith("index-\udcff") and info["rows"] == 26
    # Arrow cannot write such a name: ingest says so in one line instead of a UnicodeEncodeError traceback
    done = _medrag("corpus", "ingest", "jsonl", "-i", str(fixtures_dir / "ingest/jsonl/r2med_corpus.jsonl"),
                   "--out", os.fsencode(tmp_path) + b"/corpus-\xff", "--json", "-q", cwd=tmp_path)
    lines = done.stderr.decode("utf-8").strip().splitlines()
    assert done.returncode == 2 and done.stdout == b"" and len(lines) == 1 and "valid UTF-8" in lines[0], lines
