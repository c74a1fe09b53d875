"""Integrity holes (issue 15 items 1-3): a rebuild never reuses a corrupted file, the manifests protect their
own content, and a corrupted ``.npy`` or corpus shard is a one-line MedragError, never a numpy/UTF-8 traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _fixture_corpus import fixture_chunks
from click.testing import CliRunner

import medrag
from medrag.cli import cli
from medrag.config import EncoderConfig, IndexConfig
from medrag.errors import CorpusError, IndexFormatError
from medrag.ingest.store import Corpus, write_corpus

pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

CONFIG = IndexConfig(encoder=EncoderConfig(shard_rows=8))




@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    write_corpus(root / "corpus", fixture_chunks(), source="fixture")
    medrag.build_index([root / "corpus"], root / "index", CONFIG, progress=False)
    return root


@pytest.fixture()
def copy(built, tmp_path):
    shutil.copytree(built / "corpus", tmp_path / "corpus")
    shutil.copytree(built / "index", tmp_path / "index")  # finds ../corpus (the copy) first
    return tmp_path


def _flip(path: Path, offset: int, value: int = 0xFF) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= value
    path.write_bytes(bytes(data))


def _one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_rebuild_does_not_reuse_corrupted_vectors(copy):
    vectors = copy / "index" / "dense" / "vectors.npy"
    good = np.load(vectors).copy()
    _flip(vectors, vectors.stat().st_size - 7)  # inside the data: size unchanged, header intact
    result = CliRunner().invoke(cli, ["index", "verify", str(copy / "index")])
    assert "corrupt" in _one_line_error(result)
    medrag.build_index([copy / "corpus"], copy / "index", CONFIG, progress=False)
    assert np.array_equal(np.load(vectors), good)  # encoded again, not reused
    assert CliRunner().invoke(cli, ["index", "verify", str(copy / "index")]).exit_code == 0


def test_rebuild_reuses_intact_vectors(copy, monkeypatch):
    from medrag.index import encoder as encoder_mod

    def boom(config):
        raise AssertionError("an intact vectors.npy must be reused, not re-encoded")

    monkeypatch.setattr(encoder_mod, "load_encoder", boom)
    medrag.build_index([copy / "corpus"], copy / "index", CONFIG, progress=False)


@pytest.mark.parametrize(
    ("target", "edit"),
    [
        ("index", lambda m: m["fusion"].update(depth=5)),
        ("index", lambda m: m["fusion"].update(weights=[0.9, 0.1])),
        ("index", lambda m: m["config"]["fusion"].update(depth=5)),
        ("index", lambda m: m.pop("manifest_sha256")),
        ("index", lambda m: m["files"]["dense/vectors.npy"].update(sha256="0" * 64)),
        ("corpus", lambda m: m["totals"].update(documents=1)),
        ("corpus", lambda m: m["parameters"].update(chunk_tokens=1)),
    ],
    ids=["fusion-depth", "fusion-weights", "config-fusion", "digest-removed", "file-hash", "corpus-totals",
         "corpus-parameters"],
)
def test_edited_manifest_is_refused(copy, target, edit):
    path = copy / target / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2))  # still valid JSON
    with pytest.raises((IndexFormatError, CorpusError), match="manifest"):
        medrag.load_index(copy / "index")
    message = _one_line_error(CliRunner().invoke(cli, ["index", "verify", str(copy / "index")]))
    assert "manifest" in message


def test_flipped_npy_header_is_one_line_error(copy):
    vectors = copy / "index" / "dense" / "vectors.npy"
    _flip(vectors, 12, 0x20)  # inside the header dict: 'descr' becomes unparseable
    with pytest.raises(IndexFormatError, match="vectors.npy") as info:
        medrag.load_index(copy / "index", mode="dense").search("gout", k=3)
    assert "allow_pickle" not in str(info.value)
    result = CliRunner().invoke(cli, ["search", "gout flare", "--index", str(copy / "index"), "--mode", "dense"])
    line = _one_line_error(result)
    assert "allow_pickle" not in line and "vectors.npy" in line


def test_flipped_corpus_shard_is_one_line_error(copy):
    shard = next((copy / "corpus" / "shards").glob("*.arrow"))
    data = shard.read_bytes()
    text = fixture_chunks()[0].text.encode()
    start = data.index(text[:40])
    shard.write_bytes(data[:start] + b"\xff\xfe" + data[start + 2:])  # invalid UTF-8, same size
    retriever = medrag.load_index(copy / "index", mode="bm25")
    with pytest.raises(CorpusError, match="corrupt"):
        for row in range(retriever.corpus.num_rows):
            retriever.corpus.chunk(row)
    with pytest.raises(CorpusError, match="corrupt"):
        list(Corpus.open(copy / "corpus"))
    results = [CliRunner().invoke(cli, ["search", q, "--index", str(copy / "index"), "--mode", "bm25", "-k", "30"])
               for q in ("anticoagulant", "gout", "sepsis", "infarction")]
    assert not [r for r in results if r.exception and not isinstance(r.exception, SystemExit)]
    failed = [r for r in results if r.exit_code != 0]
    assert failed, "a search that returns the corrupted row must fail"
    for r in failed:
        assert "corrupt" in _one_line_error(r)
