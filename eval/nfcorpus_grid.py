"""The candidate grid of ``eval/results/nfcorpus_candidates.md`` over the cached scores of ``nfcorpus_lab.py``.

    python eval/nfcorpus_grid.py base    # legs, shipped fusion, weights / pool / normalisation / doc-level / aggregation
    python eval/nfcorpus_grid.py rare    # rare-term penalty (FusionConfig.rare_term_penalty / rare_term_df)

Train = a seeded 400-query sample of NFCorpus train; dev = all 324; test only for the legs and the shipped fusion.
"""
# ruff: noqa: E731, B023, E501, E402, E702, I001
import glob
import os
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1])); sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import nfcorpus_lab as L
t=time.time()
lab = L.build_lab(Path(os.environ.get("NFCORPUS_LAB_CACHE", "/tmp/nfcorpus-lab")), {})
splits = {s: lab.split_rows(s) for s in ("train","dev","test")}
rng = np.random.default_rng(0)
splits["train"] = np.sort(rng.choice(splits["train"], 400, replace=False))
res = {}
def ev(name, fn, sp=("train","dev")):
    out = {}
    for s in sp:
        out[s] = L.evaluate(lab, fn(splits[s]), splits[s])[0]
    res[name] = out
    print(f"{name:55s} " + " ".join(f"{s}={v:.4f}" for s, v in out.items()), flush=True)
    json.dump(res, open(Path(os.environ.get("NFCORPUS_LAB_CACHE", "/tmp/nfcorpus-lab")) / "grid.json", "w"), indent=1)
what = sys.argv[1] if len(sys.argv) > 1 else "base"
if what == "base":
    ev("bm25 (doc max)", lambda r: L.leg_only(lab, r, "bm25"), sp=("train","dev","test"))
    ev("minilm (doc max)", lambda r: L.leg_only(lab, r, "minilm"), sp=("train","dev","test"))
    ev("shipped: chunk zscore .4/.6 pool300 (eval k=300)", lambda r: L.chunk_fusion(lab, r, {"bm25": .4, "minilm": .6}, depth=300), sp=("train","dev","test"))
    for w in (0.3, 0.5, 0.6):
        ev(f"chunk zscore {w}/{1-w:.1f} pool300", lambda r: L.chunk_fusion(lab, r, {"bm25": w, "minilm": 1-w}, depth=300))
    for d in (50, 100):
        ev(f"chunk zscore .4/.6 pool{d}", lambda r: L.chunk_fusion(lab, r, {"bm25": .4, "minilm": .6}, depth=d))
    ev("chunk minmax .4/.6 pool300", lambda r: L.chunk_fusion(lab, r, {"bm25": .4, "minilm": .6}, depth=300, method="minmax"))
    for w in (0.4, 0.5):
        ev(f"doc zscore {w}/{1-w:.1f} pool100", lambda r: L.doc_fusion(lab, r, {"bm25": w, "minilm": 1-w}, depth=100))
    ev("doc rrf60 1/1 pool100", lambda r: L.doc_fusion(lab, r, {"bm25": 1, "minilm": 1}, depth=100, rrf_k=60))
    for dec in (0.1, 0.3):
        ev(f"chunk zscore .4/.6 pool300 maxsum {dec}", lambda r: L.chunk_fusion(lab, r, {"bm25": .4, "minilm": .6}, depth=300, agg="maxsum", decay=dec))
elif what == "rare":
    from medrag.config import BM25Config
    from medrag.index.bm25 import BM25Index
    bm25 = BM25Index.load(Path(glob.glob(os.environ.get("NFCORPUS_LAB_CACHE", "/tmp/nfcorpus-lab") + "/eval-cache/indexes/nfcorpus-*/bm25")[0]), BM25Config())
    for df in (0.005, 0.01, 0.02):
        miss = L.rare_missing(bm25, lab.texts, lab.legs["bm25"].shape[1], df)
        for p in (0.25, 0.5, 1.0):
            ev(f"shipped + rare penalty {p} df{df}", lambda r: L.chunk_fusion(lab, r, {"bm25": .4, "minilm": .6}, depth=300, missing=miss, penalty=p))
print("done", time.time()-t)
