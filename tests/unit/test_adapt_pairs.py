"""Pairs and batch order of ``medrag index adapt`` (pure parts; the end-to-end run is an integration test)."""

from __future__ import annotations

import numpy as np
import pytest

from medrag.config import AdaptConfig
from medrag.errors import ConfigError
from medrag.index.adapt import Pair, batch_indices, corpus_pairs


def test_pairs_from_titles_and_document_specific_headings() -> None:
    pairs = corpus_pairs(
        titles=["AF guideline", "AF guideline", "Asthma guideline", ""],
        sections=["Apixaban dosing", "Dosing", "Dosing", "Orphan heading"],
        texts=["Apixaban 5 mg twice daily.", "Reduce the dose.", "Inhaled steroids.", "Text without title."],
        doc_ids=["af", "af", "asthma", "x"],
    )
    assert Pair("AF guideline", "Apixaban 5 mg twice daily.", "af") in pairs
    assert Pair("Apixaban dosing", "Apixaban 5 mg twice daily.", "af") in pairs
    # "Dosing" names sections of two documents: too generic to be a query
    assert not any(p.anchor == "Dosing" for p in pairs)
    assert Pair("Orphan heading", "Text without title.", "x") in pairs
    assert len(pairs) == 5


def test_batch_indices_cover_each_epoch_once_and_are_reproducible() -> None:
    steps = [batch_indices(10, 3, seed=7, step=s) for s in range(3)]
    epoch = np.concatenate(steps)
    assert len(set(epoch.tolist())) == 9 and all(len(b) == 3 for b in steps)
    assert np.array_equal(batch_indices(10, 3, seed=7, step=4), batch_indices(10, 3, seed=7, step=4))
    assert not np.array_equal(batch_indices(10, 3, seed=7, step=0), batch_indices(10, 3, seed=7, step=3))


def test_adapt_config_validates() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        AdaptConfig(batch_size=1)
    with pytest.raises(ConfigError, match="max_minutes"):
        AdaptConfig(max_minutes=0)
