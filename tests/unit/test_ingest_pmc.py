"""JATS/BITS parser: PMC articles, StatPearls-style chapters, article sets, tables and captions."""

from __future__ import annotations

import pytest

from medrag.config import IngestConfig
from medrag.ingest.pmc import parse
from medrag.ingest.records import Skips


def _parse(path, **kw):
    skips = Skips()
    docs = list(parse(path, IngestConfig(source="pmc", **kw), skips))
    return docs, skips.to_dict()


@pytest.fixture
def pmc_dir(fixtures_dir):
    return fixtures_dir / "ingest" / "pmc"


def test_article_sections_metadata_and_citation_markers(pmc_dir):
    (doc,), skips = _parse(pmc_dir / "article.nxml")
    assert skips == {}
    assert doc.doc_id == "pmc:PMC900300"
    assert doc.title == "Rate control with beta-blockers in atrial fibrillation"
    headings = [s.heading for s in doc.sections]
    assert headings == ["Abstract > Background", "Abstract > Results", "Introduction", "Methods",
                        "Methods > Statistics", "Discussion"]
    intro = doc.sections[2].text
    assert intro == "Atrial fibrillation is common and costly. See Figure 1."
    stats = doc.sections[4].text
    assert "- Primary outcome: resting heart rate." in stats and "Metoprolol | 67" not in stats
    assert not any("graphical" in s.text for s in doc.sections)
    m = doc.metadata
    assert (m.pmid, m.pmcid, m.doi, m.journal, m.year) == (
        "300", "PMC900300", "10.1000/jtm.300", "Journal of Test Medicine", 2019)
    assert m.license == "https://creativecommons.org/licenses/by/4.0/"
    assert m.url == "https://pmc.ncbi.nlm.nih.gov/articles/PMC900300/"


def test_tables_and_captions_are_optional(pmc_dir):
    (doc,), _ = _parse(pmc_dir / "article.nxml", include_tables=True, include_captions=True)
    extra = {s.heading: s.text for s in doc.sections}
    assert extra["Methods > Statistics > Table 1"].splitlines() == [
        "Table 1. Baseline characteristics.", "Group | Age", "Metoprolol | 67", "Diltiazem | 65", "Ages are means."]
    assert extra["Introduction > Figure 1"] == "Figure 1. Heart rate over time. Mean rate fell after metoprolol."


def test_statpearls_book_part(pmc_dir):
    (doc,), _ = _parse(pmc_dir / "statpearls.nxml")
    assert doc.doc_id == "pmc:NBK999999" and doc.title == "Digoxin Toxicity"
    assert [s.heading for s in doc.sections] == [
        "Continuing Education Activity", "Introduction", "Introduction > Etiology", "Treatment / Management"]
    assert doc.metadata.journal == "StatPearls" and doc.metadata.year == 2023
    assert doc.metadata.url == "https://www.ncbi.nlm.nih.gov/books/NBK999999/"
    assert doc.metadata.license == "cc-by-nc-nd"


def test_article_set_and_broken_file(pmc_dir):
    docs, skips = _parse(pmc_dir / "articleset.xml")
    assert [d.doc_id for d in docs] == ["pmc:PMC900301", "pmc:PMC900300"]
    assert docs[0].sections[0].heading == "" and docs[0].sections[1].heading == "Warfarin"
    docs, skips = _parse(pmc_dir / "broken.nxml")
    assert docs == [] and skips == {"malformed_xml": 1}


def test_real_jats_articles(shared_data):
    files = sorted((shared_data / "pubmed-xml").glob("*.nxml"))
    assert len(files) == 2
    docs = [_parse(f)[0][0] for f in files]
    bmc, plos = docs
    assert bmc.doc_id == "pmc:PMC3166277" and plos.doc_id == "pmc:PMC3460867"
    assert bmc.title == "Factors influencing lysis time stochasticity in bacteriophage λ"
    assert plos.title.startswith("MmPPOX Inhibits Mycobacterium tuberculosis Lipolytic Enzymes")
    bmc_headings = [s.heading for s in bmc.sections]
    assert "Abstract > Background" in bmc_headings and "Methods > Statistical analysis" in bmc_headings
    assert "Results > Effect of allelic variation in holin sequence" in bmc_headings
    assert "Materials and Methods > Chemicals" in [s.heading for s in plos.sections]
    assert bmc.metadata.pmid == "21810267" and bmc.metadata.license == "http://creativecommons.org/licenses/by/2.0"


def test_invalid_utf8_article_skipped_others_kept(pmc_dir, tmp_path):
    good = (pmc_dir / "articleset.xml").read_bytes()
    bad = good.replace(b"Warfarin needs INR", b"Warfarin \xc3\x28 needs INR")
    path = tmp_path / "set.xml"
    path.write_bytes(bad)
    docs, skips = _parse(path)
    assert [d.doc_id for d in docs] == ["pmc:PMC900300"] and skips == {"invalid_utf8": 1}


def test_xml_of_another_kind_is_counted_not_silent(fixtures_dir):
    docs, skips = _parse(fixtures_dir / "ingest" / "pubmed" / "base.xml")
    assert docs == []
    assert skips == {"no_records": 1}
