"""PubMed/MEDLINE parser on project-written fixtures and the shared real record."""

from __future__ import annotations

import gzip

import pytest

from medrag.config import IngestConfig
from medrag.ingest.pubmed import parse
from medrag.ingest.records import Deleted, Skips

CFG = IngestConfig(source="pubmed")


def _parse(path):
    skips = Skips()
    records = list(parse(path, CFG, skips))
    return records, skips.to_dict()


@pytest.fixture
def pubmed_dir(fixtures_dir):
    return fixtures_dir / "ingest" / "pubmed"


def test_structured_abstract_markup_and_metadata(pubmed_dir):
    records, skips = _parse(pubmed_dir / "base.xml")
    docs = {r.doc_id: r for r in records}
    doc = docs["pubmed:100"]
    assert doc.title == "Apixaban versus warfarin in atrial fibrillation with CO2 retention."
    assert [s.text.split(":")[0] for s in doc.sections] == ["BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"]
    assert "β2-agonist" in doc.sections[0].text
    m = doc.metadata
    assert (m.pmid, m.pmcid, m.doi, m.journal, m.year) == (
        "100", "PMC900100", "10.1000/test.100", "Journal of Test Cardiology", 2019)
    assert m.mesh == ("Atrial Fibrillation", "Anticoagulants", "Humans")
    assert m.publication_types == ("Randomized Controlled Trial", "Journal Article")
    assert m.url == "https://pubmed.ncbi.nlm.nih.gov/100/"
    assert docs["pubmed:101"].metadata.year == 1998  # MedlineDate
    assert docs["pubmed:102"].sections == ()  # no abstract: the pipeline counts it as empty_abstract
    assert docs["pubmed:107"].metadata.journal == "GeneReviews-like Test Book"  # PubmedBookArticle
    assert [r.doc_id for r in records].count("pubmed:104") == 2  # duplicates are resolved in finalize
    assert skips == {"missing_pmid": 1}


def test_update_file_yields_deletions(pubmed_dir):
    records, _ = _parse(pubmed_dir / "update.xml")
    assert [r for r in records if isinstance(r, Deleted)] == [Deleted("pubmed:103"), Deleted("pubmed:999")]


def test_malformed_record_skipped_rest_kept(pubmed_dir):
    records, skips = _parse(pubmed_dir / "malformed.xml")
    assert [r.doc_id for r in records] == ["pubmed:200", "pubmed:202"]
    assert skips == {"malformed_xml": 1}


def test_gzip_and_truncated_gzip(pubmed_dir, tmp_path):
    data = (pubmed_dir / "base.xml").read_bytes()
    full = tmp_path / "full.xml.gz"
    full.write_bytes(gzip.compress(data))
    records, skips = _parse(full)
    assert len(records) == 7 and skips == {"missing_pmid": 1}
    cut = tmp_path / "cut.xml.gz"
    packed = gzip.compress(data, compresslevel=1)
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    records, skips = _parse(cut)
    assert skips.get("truncated_gzip") == 1
    assert 0 < len(records) < 7
    assert records[0].doc_id == "pubmed:100"


def test_invalid_utf8_skips_only_that_citation(pubmed_dir, tmp_path):
    data = (pubmed_dir / "base.xml").read_bytes()
    bad = data.replace(b"Digoxin levels", b"Digoxin \xff\xfe levels")
    path = tmp_path / "bad.xml"
    path.write_bytes(bad)
    records, skips = _parse(path)
    ids = [r.doc_id for r in records]
    assert "pubmed:103" not in ids and "pubmed:104" in ids
    assert skips == {"invalid_utf8": 1, "missing_pmid": 1}


def test_not_xml_at_all(tmp_path):
    path = tmp_path / "junk.xml"
    path.write_bytes(b"this is not xml")
    records, skips = _parse(path)
    assert records == [] and skips == {"malformed_xml": 1}


def test_real_record_29768149(shared_data):
    records, skips = _parse(shared_data / "pubmed-xml" / "pubmed-29768149.xml")
    (doc,) = records
    assert doc.doc_id == "pubmed:29768149" and skips == {}
    assert doc.title == "Inhaled Combined Budesonide-Formoterol as Needed in Mild Asthma."
    labels = [s.text.split(":")[0] for s in doc.sections]
    assert labels == ["BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"]
    assert "fast-acting β2-agonist" in doc.sections[0].text
    assert "Asthma" in doc.metadata.mesh and "Budesonide" in doc.metadata.mesh
    assert doc.metadata.doi == "10.1056/NEJMoa1715274" and doc.metadata.year == 2018


def test_xml_of_another_kind_is_counted_not_silent(fixtures_dir):
    docs, skips = _parse(fixtures_dir / "ingest" / "pmc" / "article.nxml")
    assert docs == []
    assert skips == {"no_records": 1}
