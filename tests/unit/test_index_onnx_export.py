"""The fp32 ONNX export backend: vectors vs torch, the checksum-verified cache, batching, fallback, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from medrag.config import EncoderConfig
from medrag.errors import ConfigError, InputError
from medrag.index import encoder as encoder_module
from medrag.index import onnx_export
from medrag.index.encoder import load_encoder, token_batches
from medrag.index.onnx_export import exported_model, folder_layout

FIXTURE_CHUNKS = Path(__file__).resolve().parents[1] / "fixtures" / "index" / "chunks.jsonl"


def _fixture_texts() -> list[str]:
    rows = [json.loads(line) for line in FIXTURE_CHUNKS.read_text(encoding="utf-8").splitlines() if line]
    return [f"{r['title']}\n{r['text']}" for r in rows] + ["", "BRCA1", "word " * 400]


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    """A fake sentence-transformers folder (config, tokenizer, weights stand-in, mean pooling + Normalize)."""
    root = tmp_path / "model"
    (root / "1_Pooling").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "bert", "num_attention_heads": 12,
                                                  "hidden_size": 384}))
    (root / "tokenizer.json").write_text("{}")
    (root / "model.safetensors").write_bytes(b"weights")
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return root


@pytest.fixture()
def fake_export(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Replace the torch export, fusion and check by byte writers; returns the list of exports made."""
    made: list[str] = []
    monkeypatch.setenv("MEDRAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_export, "_export", lambda layout, path: (made.append(str(layout.folder)),
                                                                        path.write_bytes(b"raw graph")))
    monkeypatch.setattr(onnx_export, "_optimise", lambda layout, raw, out: out.write_bytes(raw.read_bytes() + b"+"))
    monkeypatch.setattr(onnx_export, "_check", lambda layout, path: 0.99999)
    return made


def test_layout_reads_pooling_and_normalize(model_dir: Path) -> None:
    layout = folder_layout(model_dir)
    assert (layout.pooling, layout.normalize, layout.model_type, layout.num_heads) == ("mean", True, "bert", 12)
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert folder_layout(model_dir).pooling == "cls"


@pytest.mark.parametrize("change, message", [
    ("dense", "module 'Dense' is not supported"),
    ("max", "pooling ['max_tokens'] is not supported"),
    ("no-config", "needs a local model folder with a config.json"),
    ("no-tokenizer", "needs the model's fast tokenizer file"),
])
def test_unsupported_folders_are_one_line_errors(model_dir: Path, change: str, message: str) -> None:
    if change == "dense":
        modules = json.loads((model_dir / "modules.json").read_text())
        modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
        (model_dir / "modules.json").write_text(json.dumps(modules))
    elif change == "max":
        (model_dir / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    else:
        (model_dir / ("config.json" if change == "no-config" else "tokenizer.json")).unlink()
    with pytest.raises(InputError) as info:
        folder_layout(model_dir)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_export_is_cached_and_reused(model_dir: Path, fake_export: list[str]) -> None:
    layout = folder_layout(model_dir)
    first = exported_model(layout)
    assert first.read_bytes() == b"raw graph+" and len(fake_export) == 1
    assert exported_model(layout) == first and len(fake_export) == 1  # reused, not exported again
    assert not [p for p in first.parent.iterdir() if p.suffix == ".onnx" and p != first]  # temporaries removed


def test_checksum_mismatch_exports_again(model_dir: Path, fake_export: list[str]) -> None:
    layout = folder_layout(model_dir)
    path = exported_model(layout)
    path.write_bytes(b"tampered graph")  # same name, different bytes: its sha256 no longer matches
    assert exported_model(layout) == path and len(fake_export) == 2
    assert path.read_bytes() == b"raw graph+"
    (path.parent / "model.json").write_text("not json")  # an unreadable record is not trusted either
    exported_model(layout)
    assert len(fake_export) == 3


def test_changed_weights_get_a_new_export(model_dir: Path, fake_export: list[str]) -> None:
    first = exported_model(folder_layout(model_dir))
    (model_dir / "model.safetensors").write_bytes(b"other weights, other size")
    second = exported_model(folder_layout(model_dir))
    assert second != first and len(fake_export) == 2


def test_failed_check_keeps_nothing(model_dir: Path, fake_export: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(layout: onnx_export.ModelLayout, path: Path) -> float:
        raise InputError("ONNX export differs from torch (cosine 0.9 < 0.999)")

    monkeypatch.setattr(onnx_export, "_check", refuse)
    with pytest.raises(InputError, match="differs from torch"):
        exported_model(folder_layout(model_dir))
    assert not list((Path(onnx_export.cache_root()) / "onnx").glob("*/*.onnx"))


def test_token_batches_cover_every_row_within_budget() -> None:
    lengths = np.random.default_rng(0).integers(1, 257, size=500)
    batches = token_batches(lengths, 64, 64 * 128)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(500))
    assert list(lengths[rows]) == sorted(lengths.tolist(), reverse=True)  # longest first
    for batch in batches:
        assert len(batch) <= 64 and len(batch) * lengths[batch].max() <= 64 * 128
    assert [len(b) for b in token_batches(np.array([9000, 3]), 64, 100)] == [1, 1]  # over budget: alone


class _FakeTorch:
    def __init__(self, config: EncoderConfig) -> None:
        self.backend, self.dim = "torch", 384


def test_auto_falls_back_to_torch_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    monkeypatch.setattr(encoder_module, "SentenceTransformerEncoder", _FakeTorch)
    assert encoder_module._auto(EncoderConfig()).backend == "torch"


def test_auto_falls_back_to_torch_when_the_cache_is_unwritable(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MEDRAG_CACHE_DIR", str(tmp_path / "a-file"))
    monkeypatch.setattr(encoder_module, "SentenceTransformerEncoder", _FakeTorch)
    assert encoder_module._auto(EncoderConfig()).backend == "torch"


@pytest.mark.parametrize("config", [
    EncoderConfig(model="some-org/not-a-local-folder"),
    EncoderConfig(query_model="some-org/query-encoder"),
    EncoderConfig(device="cuda"),
])
def test_auto_uses_torch_where_the_export_does_not_apply(monkeypatch: pytest.MonkeyPatch,
                                                         config: EncoderConfig) -> None:
    monkeypatch.setattr(encoder_module, "SentenceTransformerEncoder", _FakeTorch)
    monkeypatch.setattr(encoder_module, "OnnxEncoder", lambda *a: pytest.fail("export must not be used"))
    assert encoder_module._auto(config).backend == "torch"


def test_explicit_export_errors_are_one_line() -> None:
    with pytest.raises(InputError) as info:
        load_encoder(EncoderConfig(backend="onnx-export", model="some-org/not-a-local-folder"))
    assert "needs a local model folder" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="does not support a separate query_model"):
        EncoderConfig(backend="onnx-export", query_model="x")
    with pytest.raises(ConfigError, match="encoder backend must be one of auto, onnx-export"):
        EncoderConfig(backend="tensorflow")


def test_default_backend_is_auto() -> None:
    assert EncoderConfig().backend == "auto"


def test_export_matches_torch_on_fixture_chunks() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    pytest.importorskip("sentence_transformers")
    load_encoder.cache_clear()
    onnx = load_encoder(EncoderConfig(backend="onnx-export"))
    torch = load_encoder(EncoderConfig(backend="torch"))
    assert onnx.backend == "onnx-export" and onnx.dim == torch.dim == 384
    texts = _fixture_texts()
    a, b = onnx.encode_passages(texts), torch.encode_passages(texts)
    assert a.shape == b.shape and a.dtype == np.float32
    assert float((a * b).sum(axis=1).min()) >= 0.999
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    queries = ["apixaban dose reduction", "stroke risk score"]
    assert float((onnx.encode_queries(queries) * torch.encode_queries(queries)).sum(axis=1).min()) >= 0.999
    assert load_encoder(EncoderConfig()).backend == "onnx-export"  # the default, on CPU
    record = json.loads((exported_model(folder_layout(encoder_module.default_model_path())).parent
                         / "model.json").read_text())
    assert record["min_cosine_vs_torch"] >= 0.999
