"""An index preset on the project's own retrieval sets (guidelines, PubMedQA; dev and test) and the apixaban example.

How ``--preset quality`` was checked against the shipped defaults (eval/results/nfcorpus_candidates.md, round 3):
the sets and scoring are ``quality_retrieval.py``'s (document level, nDCG@10); each set's index is built once with
the preset under ``eval/.cache/quality/<preset>-<set>-index``. The quality preset needs ``medrag[mpnet]``.

    python eval/quality_preset.py --preset quality
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_retrieval as Q  # noqa: E402

from medrag.config import INDEX_PRESETS  # noqa: E402
from medrag.index import build_index  # noqa: E402
from medrag.retrieve import load_index  # noqa: E402

APIXABAN = ("apixaban dose in renal impairment", "guideline:acc_aha_af_2023/anticoagulation#2")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(INDEX_PRESETS), default="quality")
    args = parser.parse_args()
    out: dict[str, object] = {"preset": args.preset}
    for name, (corpus, queries) in (("guidelines", Q.guideline_set()), ("pubmedqa", Q.pubmedqa_set())):
        index = Q.WORK / f"{args.preset}-{name}-index"
        start = time.perf_counter()
        if not (index / "manifest.json").is_file():
            build_index([corpus], index, INDEX_PRESETS[args.preset], progress=True)
        retriever = load_index(index)
        for split in ("dev", "test"):
            chosen = [q for q in queries if q["split"] == split]
            out[f"{name} {split} ndcg@10"] = round(Q.score(retriever, chosen)["mean"]["ndcg_cut_10"], 4)
        out[f"{name} seconds"] = round(time.perf_counter() - start)
        if name == "guidelines":
            ids = [h.chunk_id for h in retriever.search(APIXABAN[0], k=20)]
            out["apixaban rank (top 20)"] = ids.index(APIXABAN[1]) + 1 if APIXABAN[1] in ids else None
    sys.stdout.write(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
