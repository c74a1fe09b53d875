"""Out-of-core BM25: parts merged into one index equal the single-shot build, array for array."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from medrag.config import BM25Config
from medrag.index.bm25 import BM25_FILES, BM25Index, build_bm25
from medrag.index.bm25_parts import build_bm25_in_parts, build_part, merge_parts

_WORDS = ("apixaban warfarin dose reduction atrial fibrillation the of and renal impairment beta-blocker "
          "β-blocker COVID-19 2.5 mg heart failure ejection fraction stroke bleeding risk elderly patients "
          "metformin insulin hba1c ckd egfr anticoagulation therapy trial randomized placebo").split()


def _texts(n: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        words = rng.choices(_WORDS, k=rng.randint(0 if i % 37 == 0 else 3, 30))
        if i % 11 == 0:  # words that appear in one part only (grow the vocabulary part by part)
            words.append(f"rareterm{i}")
        texts.append(" ".join(words))
    return texts


def _batches(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i: i + size] for i in range(0, len(texts), size)]


def _arrays(path) -> dict:
    out = {name: np.load(path / name) for name in BM25_FILES if name.endswith(".npy")}
    out["vocab"] = json.loads((path / "vocab.index.json").read_text())
    params = json.loads((path / "params.index.json").read_text())
    params.pop("version", None)
    out["params"] = params
    return out


@pytest.mark.parametrize("config", [BM25Config(), BM25Config(method="atire", idf_method="robertson")])
@pytest.mark.parametrize("part_rows", [1, 40, 1000])
def test_parts_merge_equals_single_shot(tmp_path, config, part_rows):
    texts = _texts(230)
    batches = _batches(texts, 20)
    single = build_bm25(batches, tmp_path / "single", config)
    merged = build_bm25_in_parts(batches, tmp_path / "merged", config, part_rows=part_rows)
    assert merged.pop("merge_seconds") >= 0
    assert merged.pop("parts") == {1: 12, 40: 6, 1000: 1}[part_rows]  # whole 20-row batches per part
    assert merged == single
    a, b = _arrays(tmp_path / "single"), _arrays(tmp_path / "merged")
    assert a["vocab"] == b["vocab"] and a["params"] == b["params"]
    for name in ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy"):
        assert a[name].dtype == b[name].dtype
        np.testing.assert_array_equal(a[name], b[name])
    assert not (tmp_path / "merged" / ".parts").exists()
    index = BM25Index.load(tmp_path / "merged", config)
    ref = BM25Index.load(tmp_path / "single", config)
    for q in ("apixaban dose renal", "beta blocker heart failure", "rareterm22"):
        np.testing.assert_array_equal(index.scores(q), ref.scores(q))


def test_parts_built_independently_merge_in_row_order(tmp_path):
    """Parts built separately (as Ray tasks do) merge into the single-shot index."""
    texts = _texts(120, seed=9)
    config = BM25Config()
    build_bm25(_batches(texts, 30), tmp_path / "single", config)
    parts = []
    for i, start in enumerate(range(0, 120, 60)):
        parts.append(tmp_path / f"p{i}")
        build_part(_batches(texts[start: start + 60], 30), parts[-1], config)
    stats = merge_parts(parts, tmp_path / "merged", config)
    assert stats["documents"] == 120 and stats["parts"] == 2
    a, b = _arrays(tmp_path / "single"), _arrays(tmp_path / "merged")
    assert a["vocab"] == b["vocab"]
    np.testing.assert_array_equal(a["data.csc.index.npy"], b["data.csc.index.npy"])
    np.testing.assert_array_equal(a["indices.csc.index.npy"], b["indices.csc.index.npy"])


def test_merge_refuses_incomplete_part(tmp_path):
    from medrag.errors import IndexFormatError

    build_part([["a b c"]], tmp_path / "p0", BM25Config())
    (tmp_path / "p0" / "part.json").unlink()
    with pytest.raises(IndexFormatError, match="incomplete"):
        merge_parts([tmp_path / "p0"], tmp_path / "out", BM25Config())
