"""``medrag index build|info|verify`` and ``medrag search`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _fixture_corpus import fixture_chunks
from click.testing import CliRunner

from medrag.cli import cli
from medrag.ingest.store import write_corpus

pytest.importorskip("faiss")





@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_corpus(root / "corpus", fixture_chunks(), source="fixture")
    result = CliRunner().invoke(
        cli, ["index", "build", "--corpus", str(root / "corpus"), "--out", str(root / "index"), "--json"]
    )
    assert result.exit_code == 0, result.output
    return root, json.loads(result.stdout)


def test_build_reports_the_index(built):
    root, summary = built
    assert summary["rows"] == 30 and summary["modes"] == ["hybrid", "bm25", "dense"]
    assert summary["dense"]["dim"] == 384 and summary["dense"]["faiss"] == "Flat"
    assert (root / "index" / "manifest.json").is_file()


def test_info_and_verify(built):
    root, _ = built
    runner = CliRunner()
    info = runner.invoke(cli, ["index", "info", str(root / "index"), "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["bm25"]["tokenizer"]["stemmer"] == "english"
    human = runner.invoke(cli, ["index", "info", str(root / "index")])
    assert human.exit_code == 0 and "chunks" in human.stdout and "Flat" in human.stdout
    ok = runner.invoke(cli, ["index", "verify", str(root / "index")])
    assert ok.exit_code == 0 and ok.stdout.startswith("OK")


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_search_json(built, mode):
    root, _ = built
    result = CliRunner().invoke(cli, ["search", "gout flare colchicine", "--index", str(root / "index"), "-k", "3",
                                      "--mode", mode, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["mode"] == mode and [h["rank"] for h in out["hits"]] == [1, 2, 3]
    assert out["hits"][0]["doc_id"] in {"guideline:gout/flare", "pubmed:1006"}
    assert {"chunk_id", "score", "text", "title", "section", "source", "metadata"} <= set(out["hits"][0])


def test_search_filters_and_table(built):
    root, _ = built
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "anticoagulation", "--index", str(root / "index"), "--source", "pubmed",
                                 "--year-from", "2010", "--json"])
    hits = json.loads(result.stdout)["hits"]
    assert hits and all(h["source"] == "pubmed" and h["metadata"]["year"] >= 2010 for h in hits)
    table = runner.invoke(cli, ["search", "sepsis definition", "--index", str(root / "index"), "-k", "2"])
    assert table.exit_code == 0 and "sepsis" in table.stdout.lower()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "", "--index", "{index}"], 2, "query must be a non-empty string"),
        (["search", "gout", "--index", "{index}", "-k", "0"], 2, "k must be a positive integer"),
        (["search", "gout", "--index", "{missing}"], 1, "no such index; build one with `medrag index build`"),
        (["index", "build", "--corpus", "{missing}", "--out", "{missing}"], 1, "no such corpus directory"),
        (["index", "build", "--corpus", "{corpus}", "--out", "{missing}", "--faiss", "Nope"], 2, "invalid faiss factory"),
    ],
)
def test_one_line_errors(built, tmp_path, args, code, message):
    root, _ = built
    paths = {"index": root / "index", "missing": tmp_path / "missing", "corpus": root / "corpus"}
    result = CliRunner().invoke(cli, [a.format(**{k: str(v) for k, v in paths.items()}) for a in args])
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("Error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_corrupt_index_via_verify(built, tmp_path):
    import shutil

    root, _ = built
    shutil.copytree(root / "corpus", tmp_path / "corpus")
    shutil.copytree(root / "index", tmp_path / "index")
    target = tmp_path / "index" / "bm25" / "data.csc.index.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["index", "verify", str(tmp_path / "index")])
    assert result.exit_code == 1 and "bm25/data.csc.index.npy is corrupt" in result.stderr


def test_default_build_and_search_on_the_embedded_corpus(tmp_path, monkeypatch):
    """`medrag index build` with no arguments, then `medrag search`, offline (BM25 part: fast)."""
    pytest.importorskip("open_medicine")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    missing = runner.invoke(cli, ["search", "atrial fibrillation"])
    assert missing.exit_code == 1 and "medrag index build" in missing.stderr
    built = runner.invoke(cli, ["index", "build", "--no-dense", "--quiet"])
    assert built.exit_code == 0, built.output
    assert Path("corpora/guidelines/manifest.json").is_file() and Path("indexes/default/manifest.json").is_file()
    result = runner.invoke(cli, ["search", "first-line anticoagulant in atrial fibrillation", "--mode", "bm25", "--json"])
    hits = json.loads(result.stdout)["hits"]
    assert len(hits) == 10 and any(h["doc_id"].startswith("guideline:acc_aha_af_2023/") for h in hits[:3])


@pytest.mark.slow
def test_default_hybrid_build_on_the_embedded_corpus(tmp_path, monkeypatch):
    pytest.importorskip("open_medicine")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["index", "build", "--quiet"]).exit_code == 0
    result = runner.invoke(cli, ["search", "first-line anticoagulant in atrial fibrillation", "--json"])
    hits = json.loads(result.stdout)["hits"]
    assert hits[0]["doc_id"].startswith("guideline:acc_aha_af_2023/")


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 13: the AF guideline's apixaban dosing chunk ranks 15th in default "
                   "hybrid (it never says 'renal'; its renal criteria are CrCl/creatinine). RM3 + rare-term "
                   "protection lift it to 3rd but lose guideline dev nDCG@10 (eval/results/nfcorpus_candidates.md)")
def test_apixaban_renal_dosing_chunk_in_the_default_hybrid_top_3(tmp_path, monkeypatch):
    pytest.importorskip("open_medicine")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["index", "build", "--quiet"]).exit_code == 0
    result = runner.invoke(cli, ["search", "apixaban dose in renal impairment", "-k", "3", "--json"])
    hits = json.loads(result.stdout)["hits"]
    assert any(h["doc_id"] == "guideline:acc_aha_af_2023/anticoagulation"
               and "DOAC Dosing and Adjustments" in h["section"] for h in hits)
