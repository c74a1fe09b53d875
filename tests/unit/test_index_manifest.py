"""The typed index manifest and strict index configs: unknown keys rejected at every level, Literal fields
checked, library versions recorded and a too-old reader refused, manifests of the previous layout still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import medrag
from medrag.config import IndexConfig, RerankConfig, config_to_dict, index_config_from_dict, rerank_config
from medrag.errors import ConfigError, IndexFormatError
from medrag.index.manifest import IndexManifest, read_index_manifest
from medrag.ingest.store import write_corpus
from medrag.manifest import DIGEST_KEY, write_manifest
from medrag.types import Chunk, Metadata

DOCS = ["warfarin for atrial fibrillation", "colchicine for gout flares", "apixaban versus warfarin"]


@pytest.fixture(scope="module")
def bm25_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("manifest")
    chunks = [Chunk(f"d{i}#0", f"d{i}", "fixture", f"title {i}", "", text, 0, Metadata(year=2020))
              for i, text in enumerate(DOCS)]
    write_corpus(root / "corpus", chunks, source="fixture")
    return Path(medrag.build_index([root / "corpus"], root / "index", IndexConfig(dense=False), progress=False))


def _data(index: Path) -> dict:
    data = json.loads((index / "manifest.json").read_text())
    data.pop(DIGEST_KEY)  # the self-digest is checked by read_manifest, not part of the typed manifest
    return data


def _write(index: Path, data: dict) -> None:
    write_manifest(index / "manifest.json", data)  # sealed again, as a build would


def test_manifest_is_typed_and_records_versions(bm25_index):
    m = read_index_manifest(bm25_index)
    assert isinstance(m, IndexManifest) and m.rows == 3 and m.dense is None and m.modes == ("bm25",)
    assert isinstance(m.config, IndexConfig) and m.config.dense is False
    assert m.corpora[0].rows == 3 and m.bm25.dir == "bm25" and set(m.files) >= {"bm25/params.index.json"}
    assert "bm25s" in m.versions
    assert IndexManifest.from_dict(m.to_dict()) == m  # round trip through JSON-ready dicts


@pytest.mark.parametrize("where", ["top", "bm25", "config", "config.fusion", "corpora"])
def test_unknown_keys_are_refused_everywhere(bm25_index, tmp_path, where):
    data = _data(bm25_index)
    target = {"top": data, "bm25": data["bm25"], "config": data["config"],
              "config.fusion": data["config"]["fusion"], "corpora": data["corpora"][0]}[where]
    target["surprise"] = 1
    with pytest.raises(IndexFormatError, match="surprise"):
        IndexManifest.from_dict(data)


def test_closed_choices_are_checked(bm25_index):
    data = _data(bm25_index)
    data["kind"] = "corpus"
    with pytest.raises(IndexFormatError, match="kind"):
        IndexManifest.from_dict(data)


def test_manifest_of_the_previous_layout_loads(bm25_index, tmp_path):
    """The layout before the typed manifest (no ``versions``, no ``legs``/``rerank`` in the config) is still
    understood; such manifests on disk are refused anyway, for lacking their self-digest (rebuild)."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(bm25_index.parent, old)
    data = _data(old / "index")
    data.pop("versions")
    for key in ("legs", "rerank"):
        data["config"].pop(key)
    for key in ("passage_format", "query_max_seq_length", "trust_remote_code"):
        data["config"]["encoder"].pop(key)
    _write(old / "index", data)
    retriever = medrag.load_index(old / "index", mode="bm25")
    assert retriever.search("warfarin", k=1)[0].doc_id in {"d0", "d2"}


def test_an_index_written_by_a_newer_bm25s_is_refused(bm25_index, tmp_path):
    import shutil

    newer = tmp_path / "newer"
    shutil.copytree(bm25_index.parent, newer)
    data = _data(newer / "index")
    data["versions"]["bm25s"] = "99.0.0"
    _write(newer / "index", data)
    with pytest.raises(IndexFormatError, match=r"bm25s 99\.0\.0.*pip install 'bm25s>=99\.0\.0' or rebuild"):
        medrag.load_index(newer / "index", mode="bm25")


def test_index_config_from_dict_rejects_unknown_keys():
    data = config_to_dict(IndexConfig())
    assert index_config_from_dict(data) == IndexConfig()
    for mutate in (lambda d: d.update(extra=1), lambda d: d["encoder"].update(modle="x"),
                   lambda d: d["fusion"].update(wieghts=[1, 1])):
        bad = config_to_dict(IndexConfig())
        mutate(bad)
        with pytest.raises(ConfigError, match="unknown"):
            index_config_from_dict(bad)


def test_rerank_presets():
    cross = rerank_config("medcpt-cross", depth=20)
    assert cross.model == "ncbi/MedCPT-Cross-Encoder" and cross.depth == 20 and cross.max_length == 512
    assert rerank_config("bge-reranker-v2-m3").model == "BAAI/bge-reranker-v2-m3"
    assert rerank_config("/models/mine") == RerankConfig(model="/models/mine")
    with pytest.raises(ConfigError, match="depth"):
        RerankConfig(model="x", depth=0)
