"""``medrag index adapt`` end to end on the embedded guideline corpus (a few steps), then an index built with
the adapted model through ``index build --dense-model`` (on the 30-chunk index fixture, to keep encoding short)
and searched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _fixture_corpus import fixture_chunks
from click.testing import CliRunner

from medrag.cli import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

pytest.importorskip("sentence_transformers")
pytest.importorskip("faiss")


def _small_corpus(out: Path) -> None:
    """The 30-chunk index fixture as a corpus."""
    from medrag.ingest.store import write_corpus

    write_corpus(out, fixture_chunks(), source="fixture")


@pytest.fixture(scope="module")
def guideline_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medrag.ingest.guidelines import build_default_corpus

    return Path(build_default_corpus(tmp_path_factory.mktemp("adapt") / "corpus"))


def test_adapt_writes_a_model_that_index_build_accepts(guideline_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    model = tmp_path / "models" / "guidelines"
    args = ["index", "adapt", "--corpus", str(guideline_corpus), "--out", str(model), "--steps", "3",
            "--batch-size", "4", "--max-seq-length", "64", "--checkpoint-every", "2", "--json"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["steps"] == 3 and manifest["stopped_by"] == "steps" and manifest["seed"] == 1234
    assert manifest["data"]["pairs"] > 100 and len(manifest["data"]["corpora"]) == 1
    assert manifest["base_model"].startswith("all-MiniLM-L6-v2")
    assert json.loads((model / "adapt.json").read_text())["data"]["fingerprint"] == manifest["data"]["fingerprint"]
    assert (model / "modules.json").is_file() and not (model / "checkpoint").exists()
    again = runner.invoke(cli, args)  # finished: returned as is, not retrained
    assert again.exit_code == 0 and json.loads(again.stdout)["seconds"] == manifest["seconds"]

    _small_corpus(tmp_path / "small")
    index = tmp_path / "index"
    built = runner.invoke(cli, ["index", "build", "--corpus", str(tmp_path / "small"), "--out", str(index),
                                "--dense-model", str(model), "--json"])
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["dense"]["model"] == str(model)
    hits = runner.invoke(cli, ["search", "anticoagulant dose", "--index", str(index),
                               "--mode", "dense", "--json"])
    assert hits.exit_code == 0 and json.loads(hits.stdout)["hits"]


def test_adapt_resumes_from_a_time_limited_checkpoint(guideline_corpus: Path, tmp_path: Path) -> None:
    from medrag.config import AdaptConfig
    from medrag.index.adapt import CHECKPOINT, _load_model, _run_key, _save_checkpoint, adapt_encoder

    config = AdaptConfig(steps=2, batch_size=4, max_seq_length=32, warmup_steps=0)
    out = tmp_path / "model"
    first = adapt_encoder([guideline_corpus], out, config, progress=False)
    # fake an interrupted longer run: a checkpoint at step 2 of the same key, then ask for 3 steps
    longer = AdaptConfig(steps=3, batch_size=4, max_seq_length=32, warmup_steps=0)
    assert _run_key(longer, first["data"]["fingerprint"]) == first["key"]
    (out / "adapt.json").unlink()
    _save_checkpoint(_load_model(str(out)), out, first["key"], 2, [1.0, 0.9])
    resumed = adapt_encoder([guideline_corpus], out, longer, progress=False)
    assert resumed["steps"] == 3 and len(resumed["loss"]["curve"]) == 3
    assert not (out / CHECKPOINT).exists()


def test_adapt_rejects_a_missing_base_model(guideline_corpus: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["index", "adapt", "--corpus", str(guideline_corpus), "--out",
                                      str(tmp_path / "m"), "--base-model", str(tmp_path / "nope"), "--steps", "1"])
    assert result.exit_code != 0 and "Error:" in result.output
