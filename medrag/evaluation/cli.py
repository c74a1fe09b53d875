"""``medrag eval retrieval|rag|report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..cli_common import emit_json, json_option, stdout_console
from ..config import (
    IndexConfig,
    LoopConfig,
    MedRGBEvalConfig,
    QAEvalConfig,
    RetrievalEvalConfig,
    index_config_from_dict,
)
from ..errors import ConfigError, DataNotFoundError
from ..llm import load_llm
from ..manifest import MANIFEST_NAME
from .data import load_tasks
from .hub import download_medrgb, download_r2med
from .medrgb import MEDRGB_HUB, load_medrgb
from .qa import MIRAGE_URL, PUBMEDQA_URL, load_qa
from .rag import run_medrgb, run_qa
from .report import write_report
from .retrieval import evaluate_task, write_summary

__all__ = ["eval_group"]


@click.group("eval", context_settings={"help_option_names": ["-h", "--help"]})
def eval_group() -> None:
    """Evaluate retrieval (R2MED, BEIR) and RAG/QA (MedRGB, MIRAGE, PubMedQA).

    \b
    Examples:
      medrag eval retrieval --benchmark r2med --data R2MED/ --task Biology --mode hybrid --out results/r2med
      medrag eval retrieval --benchmark beir --data scifact/ --mode bm25 --out results/scifact
      medrag eval retrieval --benchmark r2med --data R2MED/ --expand hyde --llm openai:http://127.0.0.1:8000/v1 --out results/r2med
      medrag eval rag --benchmark pubmedqa --data pqal_dev.json --out results/pubmedqa
      medrag eval rag --benchmark medrgb --data MedRGB/ --scenario robustness --llm openai:... --out results/medrgb
      medrag eval report results/r2med

    Every evaluation is resumable (rerun the same command after an interruption) and records its full
    config and library versions in results.json.
    """


def _load_llm(spec: str | None, profile: str | None) -> Any:
    return load_llm(spec, profile=profile)


def _index_config(path: Path | None) -> Any:
    if path is None:
        return IndexConfig()
    try:
        return index_config_from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"--index-config {path}: not a readable IndexConfig JSON ({exc})") from exc


@eval_group.command("retrieval")
@click.option("--benchmark", type=click.Choice(["r2med", "beir"]), default="r2med", show_default=True)
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="R2MED folder (task folders inside, or one task folder) or a BEIR data set folder.")
@click.option("--task", "tasks", multiple=True, help="R2MED task(s) to run (repeatable; default: all found).")
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Results folder.")
@click.option("--split", default="test", show_default=True, help="BEIR qrels split (qrels/<split>.tsv).")
@click.option("--depth", type=int, default=100, show_default=True, help="Documents per query in the run.")
@click.option("--expand", type=click.Choice(["hyde", "query2doc", "reason"]), default=None,
              help="LLM query expansion.")
@click.option("--llm", default=None, help="LLM spec for --expand (default: the offline packaged model).")
@click.option("--profile", default=None, help="Model profile name or JSON file for --llm.")
@click.option("--expansion-tokens", type=int, default=128, show_default=True,
              help="Token limit of each generated passage.")
@click.option("--expansions", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Precomputed passages (R2MED query_with_hydoc.jsonl) instead of generating them.")
@click.option("--index-config", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="IndexConfig as JSON (the 'config' of an index manifest); default: medrag's defaults.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Where ingested corpora, indexes and generations are cached (default: OUT/.cache).")
@click.option("--ignore-identical-ids/--keep-identical-ids", default=None,
              help="Drop hits whose doc id equals the query id (default: on for beir, off for r2med).")
@click.option("--loop-rounds", type=int, default=None,
              help="--expand reason: follow-up rounds of the loop (default: LoopConfig's).")
@click.option("--loop-queries", type=int, default=None,
              help="--expand reason: follow-up queries per round (default: LoopConfig's).")
@click.option("--name", default=None, help="System name for this run (default: mode[+expansion@model]).")
@click.option("--from-hub", is_flag=True, help="Download the R2MED task(s) from the Hugging Face hub into --data.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@json_option
def retrieval_cmd(benchmark: str, data: Path | None, tasks: tuple[str, ...], mode: str, out: Path, split: str,
                  depth: int, expand: str | None, llm: str | None, profile: str | None, expansion_tokens: int,
                  expansions: Path | None,
                  index_config: Path | None, cache_dir: Path | None, ignore_identical_ids: bool | None,
                  loop_rounds: int | None, loop_queries: int | None, name: str | None, from_hub: bool, quiet: bool, as_json: bool) -> None:
    """nDCG@10/@100, Recall@10/@100, MAP, MRR of a retrieval mode on R2MED tasks or a BEIR folder.

    One index per task is built and cached; the TREC run, per-query metrics and results.json (config,
    versions, fingerprints) go to OUT/<system>/<task>/, and OUT/summary.json collects all runs.
    Without data: download R2MED/<Task> from https://huggingface.co/R2MED (or pass --from-hub), or a BEIR
    set from https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/.
    """
    if from_hub:
        if benchmark != "r2med":
            raise ConfigError("--from-hub downloads R2MED tasks; BEIR sets come as zip files (see --help)")

        data = download_r2med(tasks, data or out / "data")
    config = RetrievalEvalConfig(
        benchmark=benchmark, mode=mode, depth=depth, split=split, expand=expand, llm=llm,
        expansions=str(expansions) if expansions else None, expansion_max_tokens=expansion_tokens,
        ignore_identical_ids=(benchmark == "beir") if ignore_identical_ids is None else ignore_identical_ids,
    )
    loaded = load_tasks(benchmark, data, tasks, split=split)
    loop_config = _loop_config(loop_rounds, loop_queries) if expand == "reason" else None
    model = _load_llm(llm, profile) if expand and not expansions else None
    outcomes = []
    try:
        for task in loaded:
            outcomes.append(evaluate_task(task, config, out, cache_dir=cache_dir, name=name, llm=model,
                                          index_config=_index_config(index_config), loop_config=loop_config,
                                          progress=not quiet and not as_json))
    finally:
        if model is not None:
            model.close()
    summary = write_summary(out)
    if as_json:
        emit_json({"runs": [o.to_dict() for o in outcomes], "summary": summary})
        return
    _print_retrieval(outcomes)


def _loop_config(rounds: int | None, queries: int | None) -> Any:
    import dataclasses

    base = LoopConfig()
    return dataclasses.replace(base, rounds=rounds or base.rounds, queries_per_round=queries or base.queries_per_round)


def _print_retrieval(outcomes: list[Any]) -> None:
    from rich.table import Table

    table = Table(title="Retrieval (x 100)")
    for col in ("system", "task", "queries", "nDCG@10", "nDCG@100", "R@10", "R@100", "MAP", "MRR"):
        table.add_column(col)
    for o in outcomes:
        m = o.aggregate
        table.add_row(o.system, o.task, str(o.num_queries), *(f"{100 * m[k]:.2f}" for k in
                      ("ndcg@10", "ndcg@100", "recall@10", "recall@100", "map", "mrr")))
    console = stdout_console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    console.print(table)
    if outcomes:
        click.echo(f"Results in {outcomes[0].out_dir.parent.parent}")


@eval_group.command("rag")
@click.option("--benchmark", type=click.Choice(["medrgb", "mirage", "pubmedqa"]), required=True)
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="medrgb: folder or bundled .jsonl; mirage: benchmark.json / .jsonl; pubmedqa: pqal json.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Results folder.")
@click.option("--llm", default=None, help="LLM spec (default: the offline packaged model).")
@click.option("--profile", default=None, help="Model profile name or JSON file.")
@click.option("--scenario", type=click.Choice(["standard", "sufficiency", "integration", "robustness"]),
              default="standard", show_default=True, help="medrgb scenario.")
@click.option("--p-sig", "p_sig", type=int, multiple=True, help="medrgb signal percentages (default 0..100).")
@click.option("--n-docs", type=int, default=10, show_default=True, help="medrgb documents per instance.")
@click.option("--dataset", "datasets", multiple=True, help="mirage: only these data sets (e.g. medqa).")
@click.option("--context", type=click.Choice(["gold", "none", "retrieved"]), default=None,
              help="QA context (default: gold for pubmedqa, none for mirage).")
@click.option("--index", type=click.Path(path_type=Path), default=None,
              help="Index for --context retrieved and --loop.")
@click.option("--loop", is_flag=True, help="Answer through the follow-up reasoning loop over --index.")
@click.option("--loop-rounds", type=int, default=None, help="--loop: follow-up rounds (default: LoopConfig's).")
@click.option("--loop-queries", type=int, default=None, help="--loop: queries per round (default: LoopConfig's).")
@click.option("--few-shot", type=int, default=3, show_default=True, help="Worked examples for completion models.")
@click.option("--max-tokens", type=int, default=None,
              help="Answer budget in tokens, after any thinking (default: the profile's qa/medrgb budget, "
                   "e.g. 3 for QA with the offline default).")
@click.option("--thinking-tokens", type=int, default=None,
              help="Thinking budget (default: the profile's; none for a profile without think tags). A model "
                   "cut off while thinking is forced to answer.")
@click.option("--k", "k", type=int, default=None,
              help="QA --context retrieved: snippets per question (default: 32 for a trusted profile, 5 else).")
@click.option("--context-chars", type=int, default=None,
              help="QA: cut the whole context to N characters (default: no cut for a trusted profile, 1500 else).")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N items/questions.")
@click.option("--from-hub", is_flag=True, help="medrgb: download ngotrnghia1811/MedRGB into --data (or OUT/data).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@json_option
def rag_cmd(benchmark: str, data: Path | None, out: Path, llm: str | None, profile: str | None, scenario: str,
            p_sig: tuple[int, ...], n_docs: int, datasets: tuple[str, ...], context: str | None, index: Path | None,
            loop: bool, loop_rounds: int | None, loop_queries: int | None, few_shot: int, max_tokens: int | None,
            thinking_tokens: int | None, k: int | None, context_chars: int | None,
            limit: int | None, from_hub: bool, quiet: bool, as_json: bool) -> None:
    """Accuracy (with std and the majority baseline) on MIRAGE/PubMedQA, or the MedRGB scenario metrics.

    Accuracy scores the model's own choice: an answer naming no option counts as wrong and is reported as
    unparsed; thinking (closed or cut off) is never read as the answer.

    Without data: PubMedQA-L from https://github.com/pubmedqa/pubmedqa, MIRAGE's benchmark.json from
    https://github.com/Teddy-XiongGZ/MIRAGE, MedRGB from https://huggingface.co/datasets/ngotrnghia1811/MedRGB
    (or --from-hub).
    """
    if benchmark == "medrgb":
        result = _medrgb(data, out, llm, profile, scenario, p_sig, n_docs, (max_tokens, thinking_tokens), limit,
                         from_hub, quiet or as_json)
    else:
        config = QAEvalConfig(
            benchmark=benchmark, llm=llm, few_shot=few_shot, max_tokens=max_tokens,
            thinking_tokens=thinking_tokens, k=k, context_chars=context_chars, limit=limit,
            context=context or ("gold" if benchmark == "pubmedqa" else "none"), index=str(index) if index else None,
            loop=loop,
        )
        loop_config = _loop_config(loop_rounds, loop_queries) if loop else None
        result = _qa(config, data, profile, datasets, out, loop_config, quiet or as_json)
    if as_json:
        emit_json(result)
        return
    _print_rag(result)


def _require(data: Path | None, what: str) -> Path:
    if data is None or not data.exists():
        raise DataNotFoundError(f"{data or '--data'}: {what}")
    return data


def _medrgb(data: Path | None, out: Path, llm: str | None, profile: str | None, scenario: str,
            p_sig: tuple[int, ...], n_docs: int, budgets: tuple[int | None, int | None], limit: int | None,
            from_hub: bool, quiet: bool) -> dict[str, Any]:
    if from_hub:
        data = download_medrgb(data or out / "data")
    questions = load_medrgb(_require(data, f"no MedRGB data; get it from {MEDRGB_HUB} (or pass --from-hub)"))
    config = MedRGBEvalConfig(scenario=scenario, p_sig=p_sig or (0, 20, 40, 60, 80, 100), n_docs=n_docs, llm=llm,
                              max_tokens=budgets[0], thinking_tokens=budgets[1], limit=limit)
    with _load_llm(llm, profile) as model:
        return run_medrgb(questions, config, out, model, progress=not quiet)


def _qa(config: Any, data: Path | None, profile: str | None, datasets: tuple[str, ...], out: Path, loop_config: Any,
        quiet: bool) -> dict[str, Any]:
    where = PUBMEDQA_URL if config.benchmark == "pubmedqa" else MIRAGE_URL
    items = load_qa(config.benchmark, _require(data, f"no {config.benchmark} data; get it from {where}"), datasets)
    index = Path(config.index) if config.index else None
    retriever = _open_index(index) if index is not None and (config.loop or config.context == "retrieved") else None
    with _load_llm(config.llm, profile) as model:
        return run_qa(items, config, out, model, retriever=retriever, loop_config=loop_config, progress=not quiet)


def _open_index(path: Path) -> Any:
    """The index in hybrid mode, or BM25 when it was built without dense vectors."""
    from ..retrieve.load import load_index  # deferred: pyarrow (keeps `medrag eval --help` light)

    manifest = path / MANIFEST_NAME
    modes = json.loads(manifest.read_text(encoding="utf-8")).get("modes", ["hybrid"]) if manifest.is_file() else ["hybrid"]
    return load_index(path, mode="hybrid" if "hybrid" in modes else modes[0])


def _print_rag(result: dict[str, Any]) -> None:
    if result["kind"] == "qa":
        s = result["summary"]
        click.echo(f"{result['benchmark']}: accuracy {100 * s['accuracy']:.1f}% "
                   f"(std {100 * s['std_binomial']:.1f} binomial, {100 * (s['std_bootstrap'] or 0):.1f} bootstrap; "
                   f"n={s['n']}, unparsed {s['unparsed']} = {100 * s['unparsed_rate']:.1f}%); majority baseline "
                   f"({s['majority_label']}) {100 * s['majority_baseline']:.1f}%")
        return
    for group, m in result["metrics"].items():
        vals = ", ".join(f"{k} {100 * v:.1f}" for k, v in m.items() if k != "n" and v is not None)
        click.echo(f"{group} (n={m['n']}): {vals}")


@eval_group.command("report")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Where to write (default: RESULTS).")
@json_option
def report_cmd(results: Path, out: Path | None, as_json: bool) -> None:
    """Markdown table + PNG bar chart of the runs under RESULTS next to the published R2MED numbers."""
    written = write_report(results, out)
    if as_json:
        emit_json(written)
        return
    click.echo(f"Wrote {written['markdown']}" + "".join(f"\nWrote {p}" for p in written["images"]))
