"""The ingest pipeline end to end: cross-file PubMed semantics, duplicates, resume, workers, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medrag.config import ChunkConfig, IngestConfig
from medrag.errors import InputError
from medrag.ingest import ingest
from medrag.ingest.store import Corpus
from medrag.ingest.synthetic import write_medline


def _shards(out: Path) -> dict[str, str]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {s["file"]: s["sha256"] for s in manifest["shards"]}


def _rows(out: Path) -> dict[str, dict]:
    return {r["chunk_id"]: r for r in Corpus.open(out, verify=True).table.to_pylist()}


@pytest.fixture
def pubmed_dir(fixtures_dir):
    return fixtures_dir / "ingest" / "pubmed"


def test_pubmed_updates_replace_and_delete(pubmed_dir, tmp_path):
    report = ingest("pubmed", [pubmed_dir / "base.xml", pubmed_dir / "update.xml"], tmp_path / "c", progress=False)
    rows = _rows(tmp_path / "c")
    doc_ids = [r["doc_id"] for r in rows.values()]
    assert sorted(set(doc_ids)) == ["pubmed:100", "pubmed:101", "pubmed:104", "pubmed:105", "pubmed:107"]
    assert len(doc_ids) == len(set(doc_ids))  # exactly one live version of each PMID
    assert rows["pubmed:101#0"]["title"] == "Revised title of citation 101."
    assert rows["pubmed:104#0"]["title"] == "Second copy of a duplicated PMID."
    assert (report.replaced, report.deleted, report.documents) == (1, 1, 5)
    assert report.skipped == {"duplicate_id": 1, "empty_abstract": 1, "missing_pmid": 1}
    totals = json.loads((tmp_path / "c" / "manifest.json").read_text())["totals"]
    assert totals["delete_notices"] == 2 and totals["replaced"] == 1 and totals["deleted"] == 1
    # order matters: given first, the update loses to the baseline and its deletion has nothing earlier to remove
    ingest("pubmed", [pubmed_dir / "update.xml", pubmed_dir / "base.xml"], tmp_path / "r", progress=False)
    rows = _rows(tmp_path / "r")
    assert rows["pubmed:101#0"]["title"] == "Original title of citation 101." and "pubmed:103#0" in rows


def test_cross_file_duplicates_first_wins_for_other_sources(fixtures_dir, tmp_path):
    jl = fixtures_dir / "ingest" / "jsonl"
    copy = tmp_path / "again.jsonl"
    copy.write_text('{"id": "biology-doc-1", "text": "Later duplicate."}\n{"id": "new", "text": "New row."}\n')
    report = ingest("jsonl", [jl / "r2med_corpus.jsonl", copy], tmp_path / "c", progress=False)
    rows = _rows(tmp_path / "c")
    assert rows["biology-doc-1#0"]["text"].startswith("Mitochondria") and "new#0" in rows
    assert report.skipped == {"duplicate_id": 1} and report.documents == 4


def test_resume_reuses_units_and_reparses_changed_inputs(pubmed_dir, tmp_path):
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    a.write_bytes((pubmed_dir / "base.xml").read_bytes())
    b.write_bytes((pubmed_dir / "update.xml").read_bytes())
    first = ingest("pubmed", [a, b], tmp_path / "c", progress=False)
    again = ingest("pubmed", [a, b], tmp_path / "c", progress=False)
    assert again.units_reused == 2 and again.fingerprint == first.fingerprint
    b.write_bytes((pubmed_dir / "update.xml").read_bytes().replace(b"Edoxaban", b"Dabigatran"))
    changed = ingest("pubmed", [a, b], tmp_path / "c", progress=False)
    assert changed.units_reused == 1 and changed.fingerprint != first.fingerprint
    assert "Dabigatran" in _rows(tmp_path / "c")["pubmed:105#0"]["text"]
    # dropping an input removes its shards from the corpus
    only_a = ingest("pubmed", [a], tmp_path / "c", progress=False)
    assert only_a.units == 1 and "pubmed:103#0" in _rows(tmp_path / "c")
    assert len(list((tmp_path / "c" / ".work" / "shards").iterdir())) == 1


def test_chunk_parameters_change_rebuilds(pubmed_dir, tmp_path):
    ingest("pubmed", [pubmed_dir / "base.xml"], tmp_path / "c", progress=False)
    cfg = IngestConfig(source="pubmed", chunk=ChunkConfig(max_tokens=24, overlap_tokens=4))
    report = ingest("pubmed", [pubmed_dir / "base.xml"], tmp_path / "c", cfg, progress=False)
    assert report.units_reused == 0 and report.chunks > report.documents


def test_missing_input_and_unknown_source(tmp_path):
    with pytest.raises(InputError, match="input not found"):
        ingest("pubmed", [tmp_path / "nope.xml"], tmp_path / "c", progress=False)
    with pytest.raises(InputError, match="unknown source"):
        ingest("medline2", [tmp_path], tmp_path / "c", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no pmc inputs"):
        ingest("pmc", [tmp_path / "empty"], tmp_path / "c", progress=False)


@pytest.fixture(scope="module")
def synthetic_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    files = [write_medline(folder / f"pubmed99n{i:04d}.xml.gz", 150, first_pmid=1 + i * 120, seed=i)
             for i in range(1, 7)]
    files.append(write_medline(folder / "pubmed99n0007.xml", 20, first_pmid=5000, seed=7, deletes=(125, 300)))
    return files


def test_workers_give_the_same_corpus(synthetic_inputs, tmp_path):
    inputs = synthetic_inputs[:3]
    one = ingest("pubmed", inputs, tmp_path / "one", progress=False)
    two = ingest("pubmed", inputs, tmp_path / "two", IngestConfig(source="pubmed", workers=2), progress=False)
    assert _shards(tmp_path / "one") == _shards(tmp_path / "two")
    assert one.fingerprint == two.fingerprint and one.replaced == two.replaced
    assert 0 < one.replaced <= 60  # consecutive files overlap by 30 PMIDs (some without abstract)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "medrag.cli", "corpus", "ingest", "pubmed", *args]


def test_kill_9_then_rerun_equals_uninterrupted_run(synthetic_inputs, tmp_path):
    inputs = [a for f in synthetic_inputs for a in ("-i", str(f))]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(_cli(*inputs, "--out", str(clean), "-q", "--shard-rows", "100"), check=True,
                   env={**os.environ, "MEDRAG_DEBUG": "1"})
    proc = subprocess.Popen(_cli(*inputs, "--out", str(killed), "-q", "--shard-rows", "100"))
    receipts = killed / ".work" / "receipts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if receipts.is_dir() and any(receipts.glob("*.json")):
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.skip("the ingest finished before it could be killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "manifest.json").exists()
    done_before = len(list(receipts.glob("*.json")))
    assert 1 <= done_before < len(synthetic_inputs)
    out = subprocess.run(_cli(*inputs, "--out", str(killed), "-q", "--shard-rows", "100", "--json"),
                         check=True, capture_output=True, text=True)
    report = json.loads(out.stdout)
    assert report["units_reused"] >= done_before
    assert _shards(killed) == _shards(clean)
    for name in _shards(clean):
        assert (killed / name).read_bytes() == (clean / name).read_bytes()
    a = json.loads((clean / "manifest.json").read_text())
    b = json.loads((killed / "manifest.json").read_text())
    assert a["totals"] == b["totals"] and a["fingerprint"] == b["fingerprint"]
    assert a["totals"]["delete_notices"] == 2 and a["totals"]["replaced"] > 0
    rows = Corpus.open(killed, verify=True).column("doc_id").to_pylist()
    chunk_ids = Corpus.open(killed).column("chunk_id").to_pylist()
    assert len(chunk_ids) == len(set(chunk_ids))  # no duplicate chunks
    assert "pubmed:125" not in rows and "pubmed:300" not in rows
