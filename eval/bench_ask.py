"""Benchmark `medrag ask`: LLM calls, tokens and where a question's wall time goes.

Default: over the R1-style STAND-IN server (medrag/testing/standin_r1.py — rules behind an OpenAI-compatible
server on 127.0.0.1, not a model) with thinking-sized outputs and the biomed-r1-8b profile: for each loop
(follow-up with medrag's defaults and with the i-MedRAG paper preset, single-pass RAG, search tags) and two
thinking lengths (within the profile's budgets, and overrunning them so every generation is budget-forced),
it reports per question: LLM calls, prompt and completion tokens (the server's usage counts), budget-forced
generations, and the share of wall time outside the LLM (retrieval + medrag's own overhead). Writes
eval/results/ask_standin.md.

    python eval/bench_ask.py                              # stand-in, 6 questions, indexes/default
    python eval/bench_ask.py --index /tmp/idx --think-tokens 800 --overrun-tokens 3000

``--offline`` runs the older benchmark of the packaged Gemma 3 270M instead (eval/results/ask.md): for each question, single-pass RAG and the i-MedRAG follow-up loop run on the default index with the
packaged Gemma 3 270M (llama.cpp, CPU); each run's time is split into retrieval / LLM / overhead (from the
Answer's timings). Then the loop's within-round LLM work — the follow-up answer prompts of each round, taken
from the traces — is replayed on the same prompts two ways, at the same CPU budget:

* sequential: one llama.cpp instance with all ``--threads`` threads, one ``generate`` call per prompt;
* concurrent: a pool of ``--parallel`` instances sharing the ``--threads`` budget (each busy instance gets
  ``threads/parallel``), one batched ``generate`` call per round — what the loop does by default.

Writes eval/results/ask.md (tables) and eval/results/ask.png (time split + speed-up).

    python eval/bench_ask.py --offline --questions 4 --rounds 2 --queries-per-round 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

QUESTIONS = [
    "A 67-year-old with atrial fibrillation, CHA2DS2-VASc 3 and creatinine clearance 25 ml/min: which "
    "anticoagulant and dose?",
    "Which drugs lower mortality in heart failure with reduced ejection fraction?",
    "What is the first-line antibiotic for a healthy adult outpatient with community-acquired pneumonia?",
    "When should metformin be stopped in a patient with chronic kidney disease?",
    "How is diabetic ketoacidosis treated in the first hours?",
    "Which blood pressure target is recommended for adults with hypertension?",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", default="indexes/default")
    p.add_argument("--questions", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--queries-per-round", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the LLM in every configuration")
    p.add_argument("--parallel", type=int, default=2, help="llama.cpp instances in the concurrent configuration")
    p.add_argument("--repeats", type=int, default=3, help="alternating replays of each configuration")
    p.add_argument("--out", default="eval/results")
    p.add_argument("--offline", action="store_true", help="benchmark the packaged 270M model instead")
    p.add_argument("--profile", default="biomed-r1-8b", help="stand-in runs: the model profile")
    p.add_argument("--think-tokens", type=int, default=800, help="stand-in thinking per generation (within budget)")
    p.add_argument("--overrun-tokens", type=int, default=4000, help="stand-in thinking that overruns every budget")
    return p.parse_args()


def split(answer) -> dict[str, float]:  # type: ignore[no-untyped-def]
    t = dict(answer.timings)
    return {k: t.get(k, 0.0) for k in ("retrieval", "llm", "overhead", "total")}


def run_modes(retriever, llm, questions, cfg):  # type: ignore[no-untyped-def]
    from medrag.reason import FollowUpLoop, SinglePassRAG

    rows, answer_prompts = [], []
    for i, q in enumerate(questions, 1):
        for mode, loop in (("rag", SinglePassRAG(retriever, llm, cfg)), ("followup", FollowUpLoop(retriever, llm, cfg))):
            t0 = time.perf_counter()
            answer = loop.run(q)
            wall = time.perf_counter() - t0
            s = split(answer)
            n_llm = sum(len(t.outputs) for t in answer.trace)
            rows.append({"q": i, "mode": mode, "wall": wall, **s, "llm_calls": n_llm,
                         "rounds": sum(t.kind == "follow-up" for t in answer.trace)})
            print(f"q{i} {mode:8s} wall {wall:6.1f}s  llm {s['llm']:6.1f}s  retrieval {s['retrieval']:.3f}s  "
                  f"overhead {s['overhead']:.3f}s", file=sys.stderr, flush=True)
            if mode == "followup":
                for step in answer.trace:
                    if step.kind == "follow-up":
                        n = len(step.queries)
                        answer_prompts.append([p for p in step.prompts[-n:]])
    return rows, answer_prompts


def replay(prompts_by_round, threads: int, parallel: int, cfg, repeats: int = 3):  # type: ignore[no-untyped-def]
    """Time the rounds' follow-up answer prompts: sequential (1 x threads) vs concurrent (parallel x t/p).
    The two configurations alternate ``repeats`` times (the machine's load drifts); the median counts."""
    from medrag.llm import GenerationParams, load_llm

    params = GenerationParams(max_tokens=_answer_tokens(cfg), stop=("\n",))
    configs = (("sequential", {"parallel": 1, "n_threads": threads}, False),
               ("concurrent", {"parallel": parallel, "n_threads": threads}, True))
    models = {name: load_llm(None, **kw) for name, kw, _ in configs}
    times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    loads: list[float] = []
    for _ in range(repeats):
        for name, _, batched in configs:
            llm = models[name]
            llm.generate([prompts_by_round[0][0]], GenerationParams(max_tokens=1))  # warm up
            t0 = time.perf_counter()
            for prompts in prompts_by_round:
                if batched:
                    llm.generate(prompts, params)
                else:
                    for p in prompts:
                        llm.generate([p], params)
            times[name].append(time.perf_counter() - t0)
            loads.append(os.getloadavg()[0])
            print(f"replay {name}: {times[name][-1]:.1f}s", file=sys.stderr, flush=True)
    for llm in models.values():
        llm.close()
    return {name: statistics.median(ts) for name, ts in times.items()} | {"runs": times, "load": loads}


def _answer_tokens(cfg) -> int:  # type: ignore[no-untyped-def]
    from medrag.config import MODEL_PROFILES

    return cfg.budgets_for(MODEL_PROFILES["tiny-base"]).followup.answer


def table(rows) -> list[str]:  # type: ignore[no-untyped-def]
    lines = ["| mode | questions | wall s (mean) | LLM s | retrieval s | overhead s | retrieval+overhead % | "
             "LLM calls (mean) | rounds (mean) |", "|---|---|---|---|---|---|---|---|---|"]
    for mode in ("rag", "followup"):
        rs = [r for r in rows if r["mode"] == mode]
        mean = {k: statistics.mean(r[k] for r in rs) for k in ("wall", "llm", "retrieval", "overhead", "llm_calls",
                                                               "rounds")}
        pct = 100 * sum(r["retrieval"] + r["overhead"] for r in rs) / sum(r["total"] for r in rs)
        lines.append(f"| {mode} | {len(rs)} | {mean['wall']:.1f} | {mean['llm']:.1f} | {mean['retrieval']:.3f} | "
                     f"{mean['overhead']:.3f} | {pct:.2f} % | {mean['llm_calls']:.1f} | {mean['rounds']:.1f} |")
    return lines


def plot(rows, rep, path: Path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    modes = ["rag", "followup"]
    parts = {k: [statistics.mean(r[k] for r in rows if r["mode"] == m) for m in modes]
             for k in ("llm", "retrieval", "overhead")}
    bottom = [0.0, 0.0]
    for k, color in (("llm", "tab:blue"), ("retrieval", "tab:orange"), ("overhead", "tab:gray")):
        a.bar(modes, parts[k], bottom=bottom, label=k, color=color)
        bottom = [x + y for x, y in zip(bottom, parts[k], strict=True)]
    a.set_ylabel("seconds per question (mean)")
    a.set_title("Where the time goes (offline 270M)")
    a.legend()
    b.bar(["sequential", "concurrent"], [rep["sequential"], rep["concurrent"]], color=["tab:red", "tab:green"])
    b.set_ylabel("seconds (all rounds' follow-up answers)")
    b.set_title(f"Within-round answers: {rep['sequential'] / rep['concurrent']:.2f}x")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def replay_table(rep, prompts_by_round, args, cfg) -> list[str]:  # type: ignore[no-untyped-def]
    n_prompts = sum(len(p) for p in prompts_by_round)
    runs = rep["runs"]
    return [
        "## Within-round follow-up answers: concurrent vs sequential (same prompts, same CPU budget)",
        "",
        f"The {n_prompts} follow-up answer prompts of {len(prompts_by_round)} rounds (taken from the loop traces "
        f"above) replayed with greedy decoding, max_tokens {_answer_tokens(cfg)}; the configurations "
        f"alternate {len(runs['sequential'])} times and the median counts (all runs: sequential "
        f"{', '.join(f'{t:.1f}' for t in runs['sequential'])} s; concurrent "
        f"{', '.join(f'{t:.1f}' for t in runs['concurrent'])} s). Each run also records the load average, "
        "because other jobs share the two cores: "
        f"{', '.join(f'{x:.1f}' for x in rep['load'])}.",
        "",
        "| configuration | llama.cpp instances x threads | calls per round | seconds | speed-up |",
        "|---|---|---|---|---|",
        f"| sequential | 1 x {args.threads} | one per prompt | {rep['sequential']:.1f} | 1.00x |",
        f"| concurrent | {args.parallel} x {max(1, args.threads // args.parallel)} | one batched call | "
        f"{rep['concurrent']:.1f} | {rep['sequential'] / rep['concurrent']:.2f}x |",
        "",
    ]


def offline_main(args: argparse.Namespace) -> None:
    import medrag
    from medrag.config import LoopConfig
    from medrag.llm import load_llm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    retriever = medrag.load_index(args.index)
    retriever.batch_search(["warm up the query encoder"], k=1)
    cfg = LoopConfig(rounds=args.rounds, queries_per_round=args.queries_per_round)
    llm = load_llm(None, n_threads=args.threads)  # the default configuration (parallel=1)
    t0 = time.perf_counter()
    rows, prompts_by_round = run_modes(retriever, llm, QUESTIONS[: args.questions], cfg)
    llm.close()
    rep = replay(prompts_by_round, args.threads, args.parallel, cfg, args.repeats) if prompts_by_round else {}
    total = time.perf_counter() - t0
    load_after = os.getloadavg()
    lines = [
        "# `medrag ask` with the offline model: time split and within-round concurrency",
        "",
        f"Command: `python eval/bench_ask.py --questions {args.questions} --rounds {args.rounds} "
        f"--queries-per-round {args.queries_per_round} --threads {args.threads} --parallel {args.parallel}`",
        "",
        f"Index `{args.index}` ({retriever.corpus.num_rows} chunks, hybrid BM25 + MiniLM/FAISS), model: packaged "
        f"Gemma 3 270M Q4_K_M via llama.cpp, LoopConfig(rounds={args.rounds}, queries_per_round="
        f"{args.queries_per_round}, k={cfg.k}, final_k={cfg.final_k}). Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores shared with other jobs; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after ({total / 60:.1f} min in all). Absolute seconds depend on that load; the "
        "ratios are the result.",
        "",
        "## Wall time per question",
        "",
        *table(rows),
        "",
        "Retrieval = inside `batch_search` (one call per round); LLM = inside the backend; overhead = the rest "
        "(prompt building, parsing, grounding, answer assembly). Target: retrieval + overhead < 5 % of wall time.",
        "",
    ]
    lines += replay_table(rep, prompts_by_round, args, cfg) if rep else []
    (out / "ask.md").write_text("\n".join(lines), encoding="utf-8")
    if rep:
        plot(rows, rep, out / "ask.png")
    print("\n".join(lines))


def main() -> None:
    args = parse_args()
    if args.offline:
        offline_main(args)
    else:
        from bench_ask_standin import standin_main

        standin_main(args, QUESTIONS)


if __name__ == "__main__":
    main()
