"""Derive ``medrag/data/r2med_published.json`` from the R2MED repository's published result files.

    python eval/run_published_table.py [--published ../shared/data/r2med/published]

Only nDCG@10 per task is kept, for the systems the report compares against: the 15 base retrievers and the
LLM query-expansion (GAR) methods with GPT-4 / Qwen-7B on BM25 and NV-Embed-v2, plus Search-o1/Search-R1.
The averages are recomputed here and checked against the figures the R2MED paper quotes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "r2med" / "published"
OUT = ROOT / "medrag" / "data" / "r2med_published.json"

TASKS = ["Biology", "Bioinformatics", "Medical-Sciences", "MedXpertQA-Exam", "MedQA-Diag",
         "PMC-Treatment", "PMC-Clinical", "IIYi-Clinical"]
RETRIEVERS = {
    "bm25": "BM25", "contriever": "Contriever", "medcpt": "MedCPT", "inst-l": "Instructor-L",
    "inst-xl": "Instructor-XL", "bmr-410m": "BMRetriever-410M", "bmr-2b": "BMRetriever-2B",
    "bmr-7b": "BMRetriever-7B", "bge": "BGE-Large-en-v1.5", "e5": "E5-Mistral-7B", "grit": "GritLM-7B",
    "sfr": "SFR-Embedding-Mistral", "voyage": "voyage-3", "openai": "text-embedding-3-large",
    "nv": "NV-Embed-v2",
}
LLMS = {"gpt4": "GPT-4", "qwen-7b": "Qwen-7B", "qwq-32b": "QwQ-32B", "qwen-7b-ins": "Qwen-7B-Instruct"}
METHODS = {"hyde": "HyDE", "query2doc": "Query2doc", "lamer": "LameR", "search-o1": "Search-o1",
           "search-r1": "Search-R1"}
GAR = [(m, llm, r) for m in ("hyde", "query2doc", "lamer") for llm in ("gpt4", "qwen-7b") for r in ("bm25", "nv")]
GAR += [("search-o1", "qwq-32b", "nv"), ("search-r1", "qwen-7b-ins", "nv")]
#: averages quoted in the R2MED paper / our issue, to catch a wrong file or a changed table
EXPECTED = {"bm25": 15.13, "nv": 31.43, "query2doc/gpt4/nv": 41.65}


def _ndcg10(path: Path) -> float:
    test = json.loads(path.read_text(encoding="utf-8"))["test"]
    return float(test["ndcg_at_10"] if "ndcg_at_10" in test else test["NDCG@10"])  # both spellings occur


def _system(folder: Path, sid: str, name: str, **kind: str | None) -> dict:
    per_task = {t: round(100 * _ndcg10(folder / f"{t}.json"), 3) for t in TASKS}
    avg = math.fsum(per_task.values()) / len(per_task)
    return {"id": sid, "name": name, **kind, "ndcg@10": per_task, "average": round(avg, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--published", type=Path, default=DEFAULT)
    args = ap.parse_args()
    base = args.published / "base_retriever"
    systems = [_system(base / rid, rid, name, retriever=rid, expansion=None, llm=None)
               for rid, name in RETRIEVERS.items()]
    for method, llm, rid in GAR:
        sid = f"{method}/{llm}/{rid}"
        name = f"{METHODS[method]} ({LLMS[llm]}) + {RETRIEVERS[rid]}"
        systems.append(_system(args.published / "gar" / method / llm / rid, sid, name,
                               retriever=rid, expansion=method, llm=llm))
    by_id = {s["id"]: s for s in systems}
    for sid, avg in EXPECTED.items():
        if abs(by_id[sid]["average"] - avg) > 0.005:
            raise SystemExit(f"{sid}: average {by_id[sid]['average']} differs from the quoted {avg}")
    table = {
        "source": "R2MED (Li, Zhou, Liu 2025), repository results/ folder, MIT licence",
        "metric": "nDCG@10 x 100 per task (from ndcg_at_10), average over the 8 tasks",
        "tasks": TASKS,
        "systems": systems,
    }
    OUT.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(systems)} systems)")


if __name__ == "__main__":
    main()
