"""PubMedQA-L dev (500 items) accuracy with the offline default LLM, next to the majority-class baseline.

    python eval/run_pubmedqa.py [--data ../shared/data/pubmedqa/pqal_dev.json] [--context gold|none] [--limit N]

Runs ``medrag.evaluation.rag.run_qa`` (few-shot completion prompt for the packaged Gemma 3 270M base model via
llama.cpp; the answer is the first yes/no/maybe word of at most 3 generated tokens). Resumable: finished items
are cached under ``eval/results/pubmedqa/<context>/``; rerun the same command to continue. When every
configured run has results, writes the table ``eval/results/pubmedqa.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json"
OUT = ROOT / "eval" / "results" / "pubmedqa"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def write_table(out: Path) -> Path:
    rows = []
    for path in sorted(out.glob("*/results.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        s, cfg, t = res["summary"], res["config"], res["timing"]
        rows.append((path.parent.name, s, cfg, t, res["model"]["name"], res["versions"]))
    if not rows:
        raise SystemExit(f"no results under {out}")
    s0 = rows[0][1]
    lines = [
        "# PubMedQA-L dev: accuracy of the offline default LLM",
        "",
        f"{s0['n']} expert-labelled items (`pqal_dev.json`); gold labels: "
        + ", ".join(f"{k} {v}" for k, v in s0["gold_distribution"].items()) + ".",
        "",
        "| system | context | n | accuracy % | std (binomial) | std (bootstrap) | unparsed | predictions |",
        "|---|---|---|---|---|---|---|---|",
        f"| majority class (always \"{s0['majority_label']}\") | – | {s0['n']} | {_pct(s0['majority_baseline'])} | – | – | – | – |",
    ]
    for name, s, cfg, _t, model, _ in rows:
        preds = ", ".join(f"{k} {v}" for k, v in s["prediction_distribution"].items())
        lines.append(
            f"| {model}, {cfg['few_shot']}-shot completion | {name} | {s['n']} | {_pct(s['accuracy'])} "
            f"| {_pct(s['std_binomial'])} | {_pct(s['std_bootstrap'])} | {s['unparsed']} | {preds} |"
        )
    versions = rows[0][5]
    timing_file = out / "timing.json"
    sample = json.loads(timing_file.read_text(encoding="utf-8")) if timing_file.is_file() else None
    lines += [
        "",
        "Context `gold` shows the item's own abstract (cut to "
        f"{rows[0][2]['context_chars']} characters), `none` the question only. Greedy decoding, "
        f"max_tokens={rows[0][2]['max_tokens']}, answer = first yes/no/maybe word of the generation.",
        "",
        "Timing: " + "; ".join(
            f"{name}: {t['seconds_per_generated_item']} s/item over {t['generated_items']} generated items"
            for name, _, _, t, _, _ in rows if t.get("seconds_per_generated_item")
        ) + f" (last invocation of each run, on 2 CPU cores shared with other jobs; llama-cpp-python "
        f"{versions.get('llama-cpp-python', '?')}). The gold run was interrupted and resumed from its cache.",
        "",
        "Produced by `python eval/run_pubmedqa.py [--context none]` (results.json beside this file holds the "
        "full config and library versions).",
    ]
    if sample:
        lines += ["", f"Timing sample (`--timing-sample {sample['n']}`, fresh cache, load average "
                  f"{sample['load_before']:.1f} before): " + ", ".join(
                      f"{ctx} {v:.2f} s/item" for ctx, v in sample["seconds_per_item"].items()) + "."]
    md = out.parent / "pubmedqa.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--context", choices=["gold", "none"], default="gold")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--timing-sample", type=int, default=0,
                    help="Only time N items per context in a throw-away folder (written to timing.json).")
    args = ap.parse_args()
    if args.timing_sample:
        _timing_sample(args)
    elif not args.table_only:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from medrag.config import QAEvalConfig
        from medrag.evaluation.qa import load_pubmedqa
        from medrag.evaluation.rag import run_qa
        from medrag.llm import load_llm

        items = load_pubmedqa(args.data)
        cfg = QAEvalConfig(benchmark="pubmedqa", context=args.context, limit=args.limit)
        t0 = time.perf_counter()
        with load_llm(None, n_threads=args.threads) as llm:
            res = run_qa(items, cfg, OUT / args.context, llm, progress=True)
        print(f"{args.context}: accuracy {res['summary']['accuracy']:.3f} "
              f"(majority {res['summary']['majority_baseline']:.3f}) in {time.perf_counter() - t0:.0f}s")
    print(f"wrote {write_table(OUT)}")


def _timing_sample(args: argparse.Namespace) -> None:
    import tempfile

    from medrag.config import QAEvalConfig
    from medrag.evaluation.qa import load_pubmedqa
    from medrag.evaluation.rag import run_qa
    from medrag.llm import load_llm

    items = load_pubmedqa(args.data)[: args.timing_sample]
    load_before = os.getloadavg()[0]
    per_item = {}
    with load_llm(None, n_threads=args.threads) as llm, tempfile.TemporaryDirectory() as tmp:
        for ctx in ("gold", "none"):
            res = run_qa(items, QAEvalConfig(benchmark="pubmedqa", context=ctx), Path(tmp) / ctx, llm, progress=False)
            per_item[ctx] = res["timing"]["seconds_per_generated_item"]
    (OUT / "timing.json").write_text(json.dumps(
        {"n": args.timing_sample, "threads": args.threads, "load_before": load_before, "seconds_per_item": per_item},
        indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
