"""The candidate grid of ``eval/results/nfcorpus_candidates.md`` over the cached scores of ``nfcorpus_lab.py``.

    python eval/nfcorpus_grid.py base    # legs, shipped fusion, weights / pool / normalisation / doc-level / aggregation
    python eval/nfcorpus_grid.py rare    # rare-term penalty (FusionConfig.rare_term_penalty / rare_term_df)
    python eval/nfcorpus_grid.py k1b     # BM25 k1 / b (index rebuilt in memory: nfcorpus_bm25lab.py)
    python eval/nfcorpus_grid.py title   # title / section field weighting
    python eval/nfcorpus_grid.py prf     # RM3 on BM25, Rocchio on MiniLM query vectors (FusionConfig.*_feedback_*)
    python eval/nfcorpus_grid.py combo   # RM3 x Rocchio x weights x rare-term penalty
    python eval/nfcorpus_grid.py final   # the chosen combination (PRF_FUSION) on train / dev
    python eval/nfcorpus_grid.py mpnet   # all-mpnet-base-v2 as a third leg (needs its index: nfcorpus_lab.score_extra_leg)
    python eval/nfcorpus_grid.py mpnet-test   # the dev-chosen mpnet configuration (QUALITY_INDEX) on test, once

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
what = sys.argv[1] if len(sys.argv) > 1 else "base"
lab = L.build_lab(Path(os.environ.get("NFCORPUS_LAB_CACHE", "/tmp/nfcorpus-lab")), {"mpnet": ""} if what.startswith("mpnet") else {})
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
elif what in ("k1b", "title", "prf", "combo", "final", "mpnet", "mpnet-test"):
    from nfcorpus_bm25lab import BM25Lab, scores
    cache = Path(os.environ.get("NFCORPUS_LAB_CACHE", "/tmp/nfcorpus-lab"))
    (corpus_dir,) = sorted((cache / "eval-cache" / "corpora").glob("nfcorpus-*"))
    bl = BM25Lab(corpus_dir)
    Q = bl.query_matrix(lab.texts)
    H = {"bm25": .4, "minilm": .6}
    hyb = lambda sc, w=H, **kw: (lambda r: L.chunk_fusion(lab, r, w, depth=300, scores=sc, **kw))
    alone = lambda S: (lambda r: np.maximum.reduceat(S[r], lab.starts, axis=1))
    sub = splits["test"] if what == "mpnet-test" else np.concatenate([splits["train"], splits["dev"]])
    W = bl.weights()
    def rm3(fd, ft, w):
        S = lab.legs["bm25"].copy()
        S[sub] = L.rm3_scores(W, bl, [lab.texts[i] for i in sub], S[sub], fb_docs=fd, fb_terms=ft, weight=w)
        return S
    index_dir = next((cache / "eval-cache" / "indexes").glob("nfcorpus-*/dense")).parent
    V = np.load(index_dir / "dense" / "vectors.npy")
    def roc(fd, beta):
        D = lab.legs["minilm"].copy()
        D[sub] = L.rocchio_scores(D[sub], V, fb_docs=fd, beta=beta)
        return D
    if what == "mpnet":
        ev("mpnet alone (doc max)", lambda r: L.leg_only(lab, r, "mpnet"))
        for wb, wm, wp in ((.4, .6, 0), (.4, 0, .6), (.3, .35, .35), (.4, .3, .3), (.3, .5, .2), (.3, .2, .5), (.2, .4, .4)):
            ev(f"hybrid bm25/minilm/mpnet {wb}/{wm}/{wp}", hyb(None, w={"bm25": wb, "minilm": wm, "mpnet": wp}))
        S = rm3(5, 20, .3)
        D = roc(3, .3)
        VP = np.load(next((cache).glob("idx-mpnet/dense-mpnet/vectors.npy")))
        P = lab.legs["mpnet"].copy()
        P[sub] = L.rocchio_scores(P[sub], VP, fb_docs=3, beta=.3)
        for wb, wm, wp in ((.3, .7, 0), (.3, .35, .35), (.3, .45, .25), (.2, .4, .4), (.4, .3, .3)):
            ev(f"PRF (rm3 + rocchio both) bm25/minilm/mpnet {wb}/{wm}/{wp}", hyb({"bm25": S, "minilm": D, "mpnet": P}, w={"bm25": wb, "minilm": wm, "mpnet": wp}))
    elif what == "mpnet-test":
        S, D = rm3(5, 20, .3), roc(3, .3)
        VP = np.load(cache / "idx-mpnet" / "dense-mpnet" / "vectors.npy")
        P = lab.legs["mpnet"].copy()
        P[sub] = L.rocchio_scores(P[sub], VP, fb_docs=3, beta=.3)
        test = ("test",)
        ev("lab: shipped hybrid", hyb(None), sp=test)
        ev("lab: PRF_FUSION", hyb({"bm25": S, "minilm": D}, w={"bm25": .3, "minilm": .7}), sp=test)
        ev("lab: QUALITY_INDEX (mpnet leg + PRF, .3/.35/.35)",
           hyb({"bm25": S, "minilm": D, "mpnet": P}, w={"bm25": .3, "minilm": .35, "mpnet": .35}), sp=test)
    elif what == "k1b":
        for k1 in (0.9, 1.2, 1.5, 2.0):
            for b in (0.5, 0.75, 0.9, 1.0):
                S = scores(Q, bl.weights(k1=k1, b=b))
                ev(f"bm25 k1={k1} b={b} alone", alone(S)); ev(f"hybrid k1={k1} b={b}", hyb({"bm25": S}))
    elif what == "title":
        for tw, sw in ((2, 1), (3, 1), (2, 2), (0.5, 1), (1, 0)):
            S = scores(Q, bl.weights(tw=tw, sw=sw))
            ev(f"bm25 title x{tw} section x{sw} alone", alone(S)); ev(f"hybrid title x{tw} section x{sw}", hyb({"bm25": S}))
    elif what == "prf":
        for fd, ft, w in ((10, 10, .3), (10, 10, .5), (5, 20, .3), (20, 20, .3)):
            S = rm3(fd, ft, w)
            ev(f"bm25+rm3 docs{fd} terms{ft} w{w} alone", alone(S)); ev(f"hybrid bm25+rm3 docs{fd} terms{ft} w{w}", hyb({"bm25": S}))
        for fd, beta in ((3, 0.3), (5, 0.5), (10, 0.5), (5, 1.0)):
            D = roc(fd, beta)
            ev(f"minilm+rocchio docs{fd} beta{beta} alone", alone(D)); ev(f"hybrid minilm+rocchio docs{fd} beta{beta}", hyb({"minilm": D}))
    else:
        from medrag.config import BM25Config
        from medrag.index.bm25 import BM25Index
        miss = L.rare_missing(BM25Index.load(index_dir / "bm25", BM25Config()), lab.texts, lab.legs["bm25"].shape[1], 0.01)
        S = rm3(5, 20, .3)
        if what == "combo":
            for fd, ft, w in ((3, 20, .3), (5, 10, .3), (5, 30, .3), (5, 20, .2), (5, 20, .4), (10, 20, .3)):
                ev(f"hybrid bm25+rm3 docs{fd} terms{ft} w{w}", hyb({"bm25": rm3(fd, ft, w)}))
            for fd, beta in ((3, .3), (5, .5), (5, 1.0)):
                D = roc(fd, beta)
                ev(f"hybrid rm3 5/20/.3 + rocchio {fd}/{beta}", hyb({"bm25": S, "minilm": D}))
                for bw in (.3, .5):
                    ev(f"hybrid rm3 5/20/.3 + rocchio {fd}/{beta} weights {bw}/{1-bw:.1f}", hyb({"bm25": S, "minilm": D}, w={"bm25": bw, "minilm": 1 - bw}))
            D = roc(5, .5)
            for p in (.5, 1.0, 2.0):
                ev(f"hybrid rm3 5/20/.3 + rocchio 5/.5 + rare penalty {p} df.01", hyb({"bm25": S, "minilm": D}, missing=miss, penalty=p))
        else:
            ev("PRF_FUSION: rm3 5/20/.3 + rocchio 3/.3, weights .3/.7", hyb({"bm25": S, "minilm": roc(3, .3)}, w={"bm25": .3, "minilm": .7}))
print("done", time.time()-t)
