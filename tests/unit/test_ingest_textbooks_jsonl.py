"""Textbook (.txt/.md/MedRAG chunk jsonl) and BEIR/R2MED jsonl parsers."""

from __future__ import annotations

import gzip

from medrag.config import IngestConfig
from medrag.ingest import jsonl, textbooks
from medrag.ingest.records import Skips


def _parse(module, path, source):
    skips = Skips()
    return list(module.parse(path, IngestConfig(source=source), skips)), skips.to_dict()


def test_textbook_txt_paragraphs(fixtures_dir):
    (doc,), _ = _parse(textbooks, fixtures_dir / "ingest/textbooks/Anatomy_Test.txt", "textbooks")
    assert doc.doc_id == "textbook:Anatomy_Test" and doc.title == "Anatomy Test"
    assert [s.text for s in doc.sections] == [
        "Anatomy text paragraph one about the heart chambers.\nIt continues on a second line.",
        "Paragraph two about the coronary arteries.",
        "Paragraph three about the valves.",
    ]


def test_textbook_markdown_headings(fixtures_dir):
    (doc,), _ = _parse(textbooks, fixtures_dir / "ingest/textbooks/Cardiology_Test.md", "textbooks")
    assert doc.title == "Cardiology for Tests"
    assert [s.heading for s in doc.sections] == ["", "Arrhythmias > Atrial fibrillation", "Heart failure"]


def test_medrag_chunk_jsonl(fixtures_dir):
    docs, skips = _parse(textbooks, fixtures_dir / "ingest/textbooks/medrag_chunks.jsonl", "textbooks")
    assert [d.doc_id for d in docs] == ["Pharmacology_Test_0", "Pharmacology_Test_1", "Pharmacology_Test_1",
                                        "Pharmacology_Test_3"]
    assert docs[1].sections[0].text == "Heparin potentiates antithrombin."  # title stripped from contents
    assert docs[3].sections == ()
    assert skips == {"missing_id": 1}


def test_beir_and_r2med_jsonl(fixtures_dir):
    docs, skips = _parse(jsonl, fixtures_dir / "ingest/jsonl/beir_corpus.jsonl", "jsonl")
    assert [d.doc_id for d in docs] == ["4983", "5836", "7912", "4983"]
    first = docs[0]
    assert first.title.startswith("Microstructural development")
    assert (first.metadata.pmid, first.metadata.year, first.metadata.journal) == ("9822811", 1998, "Ann Neurol")
    assert first.metadata.extra == (("source_db", "test"),)
    assert skips == {"malformed_record": 1}
    docs, skips = _parse(jsonl, fixtures_dir / "ingest/jsonl/r2med_corpus.jsonl", "jsonl")
    assert [d.doc_id for d in docs] == ["biology-doc-1", "biology-doc-2", "17"] and skips == {}


def test_jsonl_invalid_utf8_and_truncated_gzip(tmp_path):
    lines = [b'{"id": "a", "text": "fine"}', b'{"id": "b", "text": "bad \xff byte"}', b'{"id": "c", "text": "ok"}']
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    docs, skips = _parse(jsonl, path, "jsonl")
    assert [d.doc_id for d in docs] == ["a", "c"] and skips == {"invalid_utf8": 1}
    body = b"\n".join(b'{"id": "%d", "text": "row %d %s"}' % (i, i, b"x" * (i % 50)) for i in range(3000))
    packed = gzip.compress(body)
    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(packed[: len(packed) // 2])
    docs, skips = _parse(jsonl, gz, "jsonl")
    assert skips.get("truncated_gzip") == 1 and 0 < len(docs) < 3000
