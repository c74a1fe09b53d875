"""Regression tier: NFCorpus (BEIR) test nDCG@10 of the shipped defaults, pinned to 4 decimals.

Run it (about 5-10 minutes on 2 CPU cores, most of it encoding the corpus once)::

    python -m pytest tests/regression -m regression -q

It runs the user-facing command, ``medrag eval retrieval --benchmark beir --data ../shared/data/nfcorpus``, for
each mode with the shipped defaults (tokenizer, chunking, encoder, fusion, document aggregation). Any change to
one of them moves a figure and fails here: update the pins (and README's quality table) only on purpose. The
corpus and index are built once per session into ``$MEDRAG_REGRESSION_CACHE`` (default: a pytest temp folder);
pointing it at a persistent folder makes reruns take seconds. Skips cleanly without ``../shared/data``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from medrag.cli import cli

pytestmark = pytest.mark.regression

#: NFCorpus test split (323 queries), nDCG@10 of ``medrag eval retrieval`` with the shipped defaults.
PINNED = {
    "bm25": 0.3190,
    "dense": 0.3258,
    "hybrid": 0.3576,
}


@pytest.fixture(scope="module")
def nfcorpus(shared_data: Path) -> Path:
    root = shared_data / "nfcorpus"
    if not (root / "corpus.jsonl").is_file():
        pytest.skip(f"NFCorpus not available at {root}")
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("MEDRAG_REGRESSION_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("regression-cache")


@pytest.mark.parametrize("mode", sorted(PINNED))
def test_nfcorpus_test_ndcg10_pinned(mode: str, nfcorpus: Path, cache_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [
        "eval", "retrieval", "--benchmark", "beir", "--data", str(nfcorpus), "--mode", mode,
        "--out", str(tmp_path / "out"), "--cache-dir", str(cache_dir), "--json",
    ])
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)["runs"][0]
    assert run["num_queries"] == 323
    assert round(run["metrics"]["ndcg@10"], 4) == PINNED[mode], run["metrics"]
