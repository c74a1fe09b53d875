"""`medrag corpus …` through click's CliRunner, on the shared real files and project fixtures."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from medrag.cli import cli


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, ["corpus", *map(str, args)])

    return invoke


def _one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output
    return lines[0]


def test_real_pubmed_record_end_to_end(run, shared_data, tmp_path):
    out = tmp_path / "pubmed"
    result = run("ingest", "pubmed", "--input", shared_data / "pubmed-xml/pubmed-29768149.xml", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["documents"] == 1 and report["skipped"] == {}
    from medrag.ingest.store import Corpus

    rows = Corpus.open(out, verify=True).table.to_pylist()
    first = rows[0]
    assert first["chunk_id"] == "pubmed:29768149#0" and first["pmid"] == "29768149"
    text = "\n".join(r["text"] for r in rows)
    for label in ("BACKGROUND:", "METHODS:", "RESULTS:", "CONCLUSIONS:"):
        assert label in text
    assert first["title"] == "Inhaled Combined Budesonide-Formoterol as Needed in Mild Asthma."
    assert first["title"] not in text
    assert {"Asthma", "Budesonide", "Formoterol Fumarate"} <= set(first["mesh"])
    assert first["url"] == "https://pubmed.ncbi.nlm.nih.gov/29768149/"


def test_real_jats_articles_end_to_end(run, shared_data, tmp_path):
    out = tmp_path / "pmc"
    result = run("ingest", "pmc", "-i", shared_data / "pubmed-xml", "--out", out, "--include-tables")
    assert result.exit_code == 0, result.output
    assert "pmc: 2 documents" in result.output
    info = json.loads(run("info", out, "--json").output)
    assert info["totals"]["documents"] == 2 and info["parameters"]["include_tables"] is True
    from medrag.ingest.store import Corpus

    rows = Corpus.open(out).table.to_pylist()
    sections = {r["section"] for r in rows}
    assert "Methods > Statistical analysis" in sections or any("Methods > Statistical analysis" in r["text"] for r in rows)
    assert {r["doc_id"] for r in rows} == {"pmc:PMC3166277", "pmc:PMC3460867"}
    assert any(r["text"].startswith("Abstract > Background\n") for r in rows)  # headings inlined


def test_guidelines_without_input_then_info_and_verify(run, tmp_path):
    out = tmp_path / "guidelines"
    result = run("ingest", "guidelines", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("guidelines: 145 documents")
    result = run("info", out, "--verify")
    assert result.exit_code == 0 and "verified   ok" in result.output and "documents  145" in result.output
    assert run("verify", out).exit_code == 0
    shard = next((out / "shards").glob("*.arrow"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.unlink()  # break the hard link to the work copy before corrupting
    shard.write_bytes(bytes(data))
    assert "corrupt" in _one_line_error(run("verify", out), code=1)


def test_bad_inputs_are_counted_in_the_summary(run, fixtures_dir, tmp_path):
    result = run("ingest", "pubmed", "-i", fixtures_dir / "ingest/pubmed", "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    assert "skipped 4: duplicate_id 1, empty_abstract 1, malformed_xml 1, missing_pmid 1" in result.output
    assert "replaced by newer versions: 1   deleted: 1" in result.output


def test_one_line_errors(run, tmp_path):
    assert "unknown source 'medline'" in _one_line_error(run("ingest", "medline", "-i", tmp_path, "--out", tmp_path / "c"))
    assert "input not found" in _one_line_error(run("ingest", "pubmed", "-i", tmp_path / "nope.xml", "--out", tmp_path / "c"))
    assert "needs at least one --input" in _one_line_error(run("ingest", "jsonl", "--out", tmp_path / "c"))
    assert "no such corpus directory" in _one_line_error(run("info", tmp_path / "missing"), code=1)
    assert "max_tokens" in _one_line_error(run("ingest", "guidelines", "--max-tokens", "4", "--out", tmp_path / "c"))


def test_help_and_sources(run):
    for sub in ("ingest", "info", "verify", "download", "sources"):
        result = run(sub, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
    listed = json.loads(run("sources", "--json").output)
    assert {s["source"] for s in listed} == {"pubmed", "pmc", "textbooks", "guidelines", "jsonl"}
