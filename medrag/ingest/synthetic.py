"""Synthetic MEDLINE/PubMed XML with the structure and sizes of a baseline file (benchmarks and tests).

Deterministic for a given seed. Each citation has what real baseline records carry: dates, journal block,
title with occasional inline markup, an abstract (structured in about a third of the citations; about 30%
have none), 1–10 authors with affiliations, publication types, chemicals, 5–20 MeSH headings with
qualifiers, keywords, history dates, article ids and (in 40%) a reference list. An average record is
~7 kB, so 30,000 citations make ~200 MB of XML, the size of a recent baseline file.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = ["write_medline", "medline_records"]

_WORDS = (
    "patients treatment clinical study trial risk outcome therapy disease cohort randomized placebo dose "
    "mortality analysis association increased reduced significant receptor expression protein cells gene "
    "mutation inflammation infection antibiotic resistance cardiac renal hepatic pulmonary neurological "
    "anticoagulation apixaban warfarin heparin insulin metformin statin hypertension diabetes asthma cancer "
    "tumour chemotherapy radiotherapy surgery imaging biomarker serum plasma concentration level pathway "
    "signalling apoptosis proliferation migration mice rats model vitro vivo children adults elderly women "
    "men hospital admission follow-up months years baseline primary secondary endpoint hazard ratio odds "
    "confidence interval median mean standard deviation compared versus between within among during after"
).split()
_LABELS = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
_PUBTYPES = ("Journal Article", "Randomized Controlled Trial", "Review", "Comparative Study",
             "Research Support, Non-U.S. Gov't", "Multicenter Study", "Case Reports")
_MESH = ("Humans", "Female", "Male", "Adult", "Aged", "Middle Aged", "Risk Factors", "Treatment Outcome",
         "Atrial Fibrillation", "Anticoagulants", "Diabetes Mellitus, Type 2", "Hypertension", "Asthma",
         "Neoplasms", "Mice", "Retrospective Studies", "Prospective Studies", "Cohort Studies", "Prognosis")
_QUALIFIERS = ("drug therapy", "epidemiology", "metabolism", "pathology", "therapeutic use", "adverse effects")


def _sentence(rng: random.Random, low: int = 8, high: int = 28) -> str:
    words = rng.choices(_WORDS, k=rng.randint(low, high))
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def _text(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng) for _ in range(sentences))


_SYLLABLES = ("ab ac ad al am an ap ar as at be ci co cy da de di do fa fe fi ga ge gi he hi la le li lo lu ma me "
              "mi mo na ne ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi xa za zo").split()
_SUFFIXES = ("itis", "osis", "emia", "ase", "ine", "ol", "ide", "mab", "nib", "pril", "sartan", "statin", "")
_FUNCTION = "the of and in with to for a was were is that by on from as or at".split()
_NON_ASCII = ("±", "µg/kg", "β-blocker", "≥", "–", "naïve", "α-synuclein", "°C", "×")


@lru_cache(maxsize=1)
def _rare_pool(size: int = 50_000) -> tuple[list[str], list[float]]:
    """A seeded pool of ``size`` distinct technical-looking words and Zipf (s = 1.1) cumulative weights."""
    rng = random.Random(1234)
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choices(_SYLLABLES, k=rng.randint(2, 5))) + rng.choice(_SUFFIXES)] = None
    cum, total = [], 0.0
    for rank in range(1, size + 1):
        total += rank ** -1.1
        cum.append(total)
    return list(words), cum


def _real_word(rng: random.Random) -> str:
    """A word as real abstracts mix them: common terms, function words, rare terms, numbers and statistics."""
    r = rng.random()
    if r < 0.45:
        return rng.choice(_WORDS)
    if r < 0.7:
        return rng.choice(_FUNCTION)
    if r < 0.88:  # a large vocabulary with a Zipfian long tail, as in real abstracts
        pool, cum = _rare_pool()
        return rng.choices(pool, cum_weights=cum)[0]
    if r < 0.94:
        return f"{rng.uniform(0, 300):.{rng.randint(0, 2)}f}"
    return rng.choice(("(p < 0.001)", "(95% CI, 1.12-3.40)", "[OR = 2.1]", "n = 1,204;", "HbA1c", "IL-6", "COVID-19"))


def _real_text(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = [_real_word(rng) for _ in range(rng.randint(8, 34))]
        if rng.random() < 0.08:
            words.insert(rng.randrange(len(words)), rng.choice(_NON_ASCII))
        out.append(words[0].capitalize() + " " + " ".join(words[1:]) + ".")
    return " ".join(out)


def _abstract(rng: random.Random, real: bool = False) -> str:
    if rng.random() < 0.3:
        return ""
    text = _real_text if real else _text
    if rng.random() < 0.35:
        parts = "".join(
            f'<AbstractText Label="{label}" NlmCategory="{label}">{escape(text(rng, rng.randint(1, 4)))}</AbstractText>'
            for label in _LABELS
        )
    else:
        parts = f"<AbstractText>{escape(text(rng, rng.randint(5, 12)))}</AbstractText>"
    return f"<Abstract>{parts}<CopyrightInformation>© 2024 The Authors.</CopyrightInformation></Abstract>"


def _authors(rng: random.Random) -> str:
    authors = []
    for i in range(rng.randint(1, 10)):
        aff = f"<AffiliationInfo><Affiliation>Department {i} of {rng.choice(_WORDS).title()}, University Hospital, City, Country.</Affiliation></AffiliationInfo>"
        authors.append(
            f'<Author ValidYN="Y"><LastName>Name{rng.randint(1, 99999)}</LastName><ForeName>A B</ForeName>'
            f"<Initials>AB</Initials>{aff if rng.random() < 0.5 else ''}</Author>"
        )
    return f'<AuthorList CompleteYN="Y">{"".join(authors)}</AuthorList>'


def _mesh(rng: random.Random) -> str:
    rows = []
    for name in rng.sample(_MESH, rng.randint(5, min(19, len(_MESH)))):
        qual = f'<QualifierName UI="Q000188" MajorTopicYN="N">{rng.choice(_QUALIFIERS)}</QualifierName>' if rng.random() < 0.4 else ""
        rows.append(f'<MeshHeading><DescriptorName UI="D000001" MajorTopicYN="N">{name}</DescriptorName>{qual}</MeshHeading>')
    return f"<MeshHeadingList>{''.join(rows)}</MeshHeadingList>"


def _references(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return ""
    refs = "".join(
        f"<Reference><Citation>{escape(_sentence(rng, 6, 14))} J Test. 20{rng.randint(10, 24)};{rng.randint(1, 99)}:1-9.</Citation>"
        f'<ArticleIdList><ArticleId IdType="pubmed">{rng.randint(1, 39000000)}</ArticleId></ArticleIdList></Reference>'
        for _ in range(rng.randint(3, 20))
    )
    return f"<ReferenceList>{refs}</ReferenceList>"


def _record(rng: random.Random, pmid: int, real_text: bool = False) -> str:
    year = rng.randint(1975, 2024)
    title = _sentence(rng, 6, 20)[:-1]
    if rng.random() < 0.2:
        title = title.replace(" ", " <i>", 1) + "</i>"
    pubtypes = "".join(f'<PublicationType UI="D016428">{p}</PublicationType>' for p in rng.sample(_PUBTYPES, rng.randint(1, 3)))
    chemicals = "".join(
        f'<Chemical><RegistryNumber>0</RegistryNumber><NameOfSubstance UI="D000002">{rng.choice(_WORDS)}</NameOfSubstance></Chemical>'
        for _ in range(rng.randint(0, 4))
    )
    keywords = "".join(f'<Keyword MajorTopicYN="N">{w}</Keyword>' for w in rng.sample(_WORDS, rng.randint(0, 6)))
    return (
        f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>'
        f"<DateCompleted><Year>{year}</Year><Month>05</Month><Day>24</Day></DateCompleted>"
        f"<DateRevised><Year>2024</Year><Month>01</Month><Day>10</Day></DateRevised>"
        f'<Article PubModel="Print-Electronic"><Journal><ISSN IssnType="Electronic">1234-5678</ISSN>'
        f'<JournalIssue CitedMedium="Internet"><Volume>{rng.randint(1, 400)}</Volume><Issue>{rng.randint(1, 12)}</Issue>'
        f"<PubDate><Year>{year}</Year><Month>Mar</Month></PubDate></JournalIssue>"
        f"<Title>Journal of {rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}</Title>"
        f"<ISOAbbreviation>J Test</ISOAbbreviation></Journal><ArticleTitle>{title}.</ArticleTitle>"
        f"<Pagination><MedlinePgn>{rng.randint(1, 900)}-{rng.randint(901, 999)}</MedlinePgn></Pagination>"
        f'<ELocationID EIdType="doi" ValidYN="Y">10.1000/test.{pmid}</ELocationID>{_abstract(rng, real_text)}{_authors(rng)}'
        f"<Language>eng</Language><PublicationTypeList>{pubtypes}</PublicationTypeList></Article>"
        f"<MedlineJournalInfo><Country>United States</Country><MedlineTA>J Test</MedlineTA><NlmUniqueID>0000001</NlmUniqueID></MedlineJournalInfo>"
        f"<ChemicalList>{chemicals}</ChemicalList>{_mesh(rng)}"
        f'<KeywordList Owner="NOTNLM">{keywords}</KeywordList></MedlineCitation>'
        f'<PubmedData><History><PubMedPubDate PubStatus="received"><Year>{year}</Year><Month>1</Month><Day>2</Day></PubMedPubDate>'
        f'<PubMedPubDate PubStatus="pubmed"><Year>{year}</Year><Month>3</Month><Day>4</Day></PubMedPubDate></History>'
        f"<PublicationStatus>ppublish</PublicationStatus><ArticleIdList>"
        f'<ArticleId IdType="pubmed">{pmid}</ArticleId><ArticleId IdType="doi">10.1000/test.{pmid}</ArticleId>'
        f"</ArticleIdList>{_references(rng)}</PubmedData></PubmedArticle>\n"
    )


def medline_records(n: int, *, first_pmid: int = 1, seed: int = 0, real_text: bool = False) -> Iterator[str]:
    """``n`` records; ``real_text=True`` writes abstracts shaped like real ones (open vocabulary, numbers and
    statistics, non-ASCII symbols in about half of the abstracts) instead of the small fixed vocabulary."""
    rng = random.Random(seed)
    for i in range(n):
        yield _record(rng, first_pmid + i, real_text)


def write_medline(
    path: str | Path, n: int, *, first_pmid: int = 1, seed: int = 0, deletes: tuple[int, ...] = (),
    compress: bool | None = None, real_text: bool = False,
) -> Path:
    """Write ``n`` synthetic citations (PMIDs from ``first_pmid``) to ``path`` (gzipped if it ends in .gz)."""
    path = Path(path)
    gz = path.name.endswith(".gz") if compress is None else compress
    opener = gzip.open(path, "wt", encoding="utf-8", compresslevel=1) if gz else open(path, "w", encoding="utf-8")
    with opener as fh:
        fh.write('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
                 '1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n')
        for record in medline_records(n, first_pmid=first_pmid, seed=seed, real_text=real_text):
            fh.write(record)
        if deletes:
            fh.write("<DeleteCitation>" + "".join(f'<PMID Version="1">{p}</PMID>' for p in deletes) + "</DeleteCitation>\n")
        fh.write("</PubmedArticleSet>\n")
    return path
