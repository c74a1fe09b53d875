"""The Ray engine's work items run without Ray (the default suite's cheap cover of the Ray code path)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medrag.config import BM25Config, EncoderConfig, IngestConfig, ScaleConfig
from medrag.errors import ConfigError
from medrag.index.bm25 import build_bm25
from medrag.index.bm25_parts import merge_parts
from medrag.index.build import part_ranges, row_batches
from medrag.index.workers import PartRunner
from medrag.ingest.pipeline import UnitRunner
from medrag.ingest.store import Corpus, write_corpus
from medrag.scale.ray_engine import ItemWorker, encode_plan
from medrag.types import Chunk, Metadata


def _corpus(tmp_path, n=50):
    chunks = [Chunk(f"d{i}#0", f"d{i}", "fixture", f"Title {i % 4}", "Methods",
                    f"warfarin dose {i} renal impairment beta-blocker term{i % 9}", 0, Metadata(year=2000 + i % 20))
              for i in range(n)]
    write_corpus(tmp_path / "corpus", chunks, source="fixture")
    return tmp_path / "corpus"


def test_part_worker_parts_merge_into_the_single_shot_index(tmp_path):
    corpus_dir = _corpus(tmp_path)
    corpus = Corpus.open(corpus_dir)
    config = BM25Config()
    build_bm25(row_batches(corpus, config.fields, 0, 50, 8), tmp_path / "single", config)
    worker = ItemWorker(PartRunner, {"corpora": [str(corpus_dir)], "fields": config.fields, "config": config,
                                     "parts_dir": str(tmp_path / "parts"), "batch_rows": 8})
    out = worker({"part": np.array([1, 0]), "start": np.array([24, 0]), "stop": np.array([50, 24])})
    assert [json.loads(r)["rows"] for r in out["result"]] == [26, 24]  # work items may arrive in any order
    merge_parts([tmp_path / "parts" / "part-00000", tmp_path / "parts" / "part-00001"], tmp_path / "merged", config)
    for name in ("data.csc.index", "indices.csc.index", "indptr.csc.index", "term_bounds.medrag"):
        np.testing.assert_array_equal(np.load(tmp_path / "single" / f"{name}.npy"),
                                      np.load(tmp_path / "merged" / f"{name}.npy"))


def test_unit_worker_returns_receipts(tmp_path, fixtures_dir):
    from medrag.ingest.chunking import Chunker
    from medrag.ingest.pipeline import run_unit
    from medrag.ingest.sources import get_source
    from medrag.ingest.units import build_parameters, expand_inputs
    from medrag.manifest import fingerprint

    config = IngestConfig(source="pubmed")
    units = expand_inputs(get_source("pubmed"), [fixtures_dir / "ingest" / "pubmed" / "base.xml"])
    params_fp = fingerprint(build_parameters(config, Chunker(config.chunk).tokenizer_path))
    out = ItemWorker(UnitRunner, {"units": units, "out": str(tmp_path / "c"), "config": config,
                                  "params_fp": params_fp})({"unit": np.array([0])})
    receipt = json.loads(out["result"][0])
    assert receipt["unit"] == units[0].prefix and receipt["chunks"] > 0
    again = run_unit(units[0], tmp_path / "c2", config, params_fp)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in receipt["shards"]]


def test_encode_plan_uses_gpus_when_asked_or_when_the_encoder_is_cuda():
    cpu = EncoderConfig()
    assert encode_plan(cpu, ScaleConfig(engine="ray"), {"CPU": 8.0})[1:] == (4, 0.0)
    enc, size, gpus = encode_plan(EncoderConfig(device="cuda"), ScaleConfig(engine="ray"), {"CPU": 16, "GPU": 4})
    assert (enc.device, size, gpus) == ("cuda", 4, 1.0)
    enc, size, gpus = encode_plan(cpu, ScaleConfig(engine="ray", gpus_per_actor=0.5, encode_actors=3), {"GPU": 1})
    assert (enc.device, size, gpus) == ("cuda", 3, 0.5)


def test_part_ranges_are_whole_batches_and_scale_config_checks():
    assert part_ranges(20_000, 1) == [(0, 0, 8192), (1, 8192, 16384), (2, 16384, 20000)]
    assert part_ranges(20_000, 1_000_000) == [(0, 0, 20_000)]
    with pytest.raises(ConfigError, match="engine"):
        ScaleConfig(engine="spark")
    with pytest.raises(ConfigError, match="--address needs --engine ray"):
        ScaleConfig(address="auto")
