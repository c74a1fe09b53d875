"""MIRAGE (MedQA-US, MedMCQA, BioASQ-Y/N, MMLU-Med) from its real ``benchmark.json``: per-dataset counts, the
random and majority baselines, and the offline default LLM's accuracy on a fixed random sample per dataset.

    python eval/run_mirage.py [--data ../shared/data/mirage/benchmark.json] [--per-dataset 100] [--seed 0]

The offline default is the packaged Gemma 3 270M base model via llama.cpp (profile ``tiny-base``): a 3-shot
completion prompt, the question only (no retrieval: MIRAGE's corpora are not on this machine), greedy decoding,
an answer budget of 3 tokens, the first standalone option letter (or yes/no word for BioASQ) is the model's
choice; an answer naming no option counts as wrong and is reported as unparsed. The CPU is shared, so each
data set is scored on ``--per-dataset`` items: the first of a permutation by ``random.Random(f"{seed}-{name}")``
of its items in file order; accuracy comes with a 95% bootstrap percentile interval (1,000 resamples). Baselines are computed
on the full data set and on the sample. Resumable: generations are cached under
``eval/results/mirage/default-none/``. Writes ``eval/results/mirage.md`` and ``eval/results/mirage.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mirage" / "benchmark.json"
OUT = ROOT / "eval" / "results"
NAMES = {"medqa": "MedQA-US", "medmcqa": "MedMCQA", "bioasq": "BioASQ-Y/N", "mmlu": "MMLU-Med"}


def sample_items(items: list, per_dataset: int, seed: int) -> list:
    """The first ``per_dataset`` items of each data set's permutation by ``random.Random(f"{seed}-{name}")``,
    interleaved round-robin across data sets. A smaller sample is a prefix of a larger one per data set, and
    an interrupted run has scored the data sets evenly, so every finished item stays usable."""
    groups = []
    for name in dict.fromkeys(it.dataset for it in items):
        group = [it for it in items if it.dataset == name]
        groups.append(random.Random(f"{seed}-{name}").sample(group, len(group))[:per_dataset])
    return [g[i] for i in range(per_dataset) for g in groups if i < len(g)]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def build_table(items: list, sample: list, result: dict, args: argparse.Namespace) -> tuple[str, dict]:
    from medrag.evaluation.qa import baselines

    rows, data = [], {}
    for name in dict.fromkeys(it.dataset for it in items):
        full = baselines([it for it in items if it.dataset == name])
        part = baselines([it for it in sample if it.dataset == name])
        acc = result["datasets"][name]
        data[name] = {"full": full, "sample": part, "model": acc}
        lo, hi = acc["ci95_bootstrap"] or (None, None)
        rows.append(f"| {NAMES.get(name, name)} | {full['n']:,} | {_pct(full['random'])} | {_pct(full['majority'])} "
                    f"({full['majority_label']}) | {part['n']} | {_pct(part['random'])} | {_pct(part['majority'])} "
                    f"({part['majority_label']}) | **{_pct(acc['accuracy'])}** [{_pct(lo)}, {_pct(hi)}] "
                    f"| {acc['unparsed']} |")
    s = result["summary"]
    lo, hi = s["ci95_bootstrap"] or (None, None)
    n_all = len(items)
    full_all = baselines(items)
    part_all = baselines(sample)
    rows.append(f"| all (pooled) | {n_all:,} | {_pct(full_all['random'])} | – | {part_all['n']} | "
                f"{_pct(part_all['random'])} | – | **{_pct(s['accuracy'])}** [{_pct(lo)}, {_pct(hi)}] | {s['unparsed']} |")
    t = result["timing"]
    versions = result.get("versions", {})
    lines = [
        "# MIRAGE: baselines and the offline default LLM",
        "",
        f"Data: MIRAGE's `benchmark.json` ({n_all:,} items; the shared copy holds MedQA-US, MedMCQA, BioASQ-Y/N "
        "and MMLU-Med, not PubMedQA*). Random = expected accuracy of a uniformly random option (mean of "
        "1/#options); majority = always answering the most frequent gold letter (in brackets).",
        "",
        f"Model: the packaged Gemma 3 270M base model via llama.cpp (profile `tiny-base`), 3-shot completion "
        f"prompt, **no retrieval** (question only), greedy, answer budget {result['generation']['answer_tokens']} "
        f"tokens. Scored on a fixed random sample of {args.per_dataset} items per data set (the first items of "
        f"`random.Random(\"{args.seed}-<data set>\")`'s permutation, see `sample_items` in the script), because "
        "the CPU is shared and slow; accuracy in bold with its 95% bootstrap percentile interval (1,000 "
        "resamples). Unparsed answers (no option named) count as wrong.",
        "",
        "| data set | items | random % | majority % | sample n | sample random % | sample majority % "
        "| Gemma 3 270M % [95% CI] | unparsed |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
        *rows,
        "",
        "Reading: a 270M base model is at chance level on medical exam questions; it is medrag's offline "
        "plumbing default, never a clinical answerer (its profile is untrusted, so `medrag ask` shows evidence "
        "instead of its text). Real numbers need an 8B medical reasoning model (`--llm vllm:…`), e.g. "
        "`medrag eval rag --benchmark mirage --data benchmark.json --llm vllm:zou-lab/BioMed-R1-8B "
        "--profile biomed-r1-8b --out results/mirage` on a GPU.",
        "",
        (f"Timing: {t['seconds']} s for {t['generated_items']} generated items in the last invocation (2 CPU "
         f"cores shared with other jobs; llama-cpp-python {versions.get('llama-cpp-python', '?')})."
         if t["generated_items"] else
         "Timing: every item came from the resumable cache of an earlier invocation (see docs/evaluation.md for "
         f"the generating run's speed; llama-cpp-python {versions.get('llama-cpp-python', '?')})."),
        "",
        f"Produced by `python eval/run_mirage.py --per-dataset {args.per_dataset} --seed {args.seed}` "
        "(`eval/results/mirage.json` holds the numbers; `eval/results/mirage/default-none/results.json` the full "
        "config, prediction distributions and library versions).",
    ]
    payload = {"data": str(args.data.name), "per_dataset": args.per_dataset, "seed": args.seed,
               "model": result["model"], "config": result["config"], "datasets": data,
               "pooled": {"full": full_all, "sample": part_all, "model": s}, "timing": t}
    return "\n".join(lines) + "\n", payload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--per-dataset", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from medrag.config import QAEvalConfig
    from medrag.evaluation.qa import load_mirage
    from medrag.evaluation.rag import run_qa
    from medrag.llm import load_llm

    items = load_mirage(args.data)
    sample = sample_items(items, args.per_dataset, args.seed)
    cfg = QAEvalConfig(benchmark="mirage", context="none")
    t0 = time.perf_counter()
    with load_llm(None, n_threads=args.threads) as llm:
        result = run_qa(sample, cfg, OUT / "mirage" / "default-none", llm, progress=True)
    md, payload = build_table(items, sample, result, args)
    (OUT / "mirage.md").write_text(md, encoding="utf-8")
    (OUT / "mirage.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(f"accuracy {result['summary']['accuracy']:.3f} on {len(sample)} items in {time.perf_counter() - t0:.0f}s; "
          f"wrote {OUT / 'mirage.md'}")


if __name__ == "__main__":
    main()
