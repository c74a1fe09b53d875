"""``medrag ask``: answer a medical question with retrieved, cited evidence."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..cli_common import emit_json, json_option
from ..config import ASK_MODES, LOOP_PRESETS, STAGES
from ..errors import ConfigError
from ..llm import load_llm
from ..llm.spec import SPEC_HELP
from ..types import Answer
from .api import ask as ask_api
from .api import open_retriever
from .runner import LoopEvent

__all__ = ["ask", "parse_option_args", "parse_budget_args", "save_trace", "render_answer"]

_HELP = """Answer a medical QUESTION from the index, with citations you can check.

\b
IMPORTANT: the offline default model (Gemma 3 270M, transformers) is a tiny base model. It can phrase search
queries but cannot answer medical questions faithfully, so with it `ask` shows the most relevant retrieved
evidence (verbatim quotes with PMID/DOI/source) instead of an answer. Real answers need an 8B medical
reasoning model, served by vLLM on a GPU or any OpenAI-compatible server:
  medrag ask "..." --llm vllm:zou-lab/BioMed-R1-8B
  medrag ask "..." --llm openai:http://127.0.0.1:8000/v1#model-name
  medrag ask "..." --llm llamacpp:/path/model.gguf --profile reasoning

\b
Modes: followup (i-MedRAG: ROUNDS x QUERIES-PER-ROUND follow-up queries, each answered from its own
evidence, then a final answer), rag (single pass), search-tags (a reasoning model writes <search> in its
thinking; evidence is inserted and generation resumes).

\b
Reasoning models think before they answer: every stage has a thinking budget and an answer budget (from
the --profile, e.g. biomed-r1-8b; override with --thinking-budget / --answer-budget). A generation that runs
out while thinking is closed and continued once for its answer, so a round is never lost silently.
Progress goes to stderr (also with --json); stdout holds only the answer.

\b
Every answer is checked: citations must name retrieved chunks and quote text that occurs in them, answer
sentences must be supported by the cited evidence, and "insufficient evidence" is reported when nothing
relevant is retrieved. Not medical advice.
"""


def parse_option_args(values: tuple[str, ...]) -> dict[str, str]:
    """``("A=aspirin", "B=heparin")`` -> ``{"A": "aspirin", "B": "heparin"}``; bare texts are lettered."""
    out: dict[str, str] = {}
    for i, raw in enumerate(values):
        key, sep, text = raw.partition("=")
        if sep and len(key.strip()) == 1 and key.strip().isalpha():
            key, text = key.strip().upper(), text.strip().strip("\"'")
        else:
            key, text = chr(ord("A") + i), raw.strip()
        if not text:
            raise ConfigError(f"--option {raw!r}: empty option text; use --option A=\"text\"")
        if key in out:
            raise ConfigError(f"--option {key} given twice")
        out[key] = text
    return out


def save_trace(answer: Answer, path: str | Path) -> None:
    """One JSON line per trace step (with the question), then one line with the answer without its trace."""
    with open(path, "w", encoding="utf-8") as fh:
        for step in answer.trace:
            fh.write(json.dumps({"question": answer.question, **step.to_dict()}, ensure_ascii=False) + "\n")
        summary = answer.to_dict()
        summary.pop("trace")
        fh.write(json.dumps({"question": answer.question, "kind": "answer", "answer": summary},
                            ensure_ascii=False) + "\n")


def parse_budget_args(values: tuple[str, ...], what: str) -> dict[str, int]:
    """``("2048", "final=4096")`` -> ``{"*": 2048, "final": 4096}`` (a bare number applies to every stage)."""
    out: dict[str, int] = {}
    for raw in values:
        stage, sep, num = raw.rpartition("=")
        stage = stage.strip() if sep else "*"
        if stage != "*" and stage not in STAGES:
            raise ConfigError(f"--{what} {raw!r}: unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        try:
            out[stage] = int(num)
        except ValueError:
            raise ConfigError(f"--{what} {raw!r}: expected [STAGE=]TOKENS, e.g. --{what} final=4096") from None
    return out


class _Live:
    """Streams a run's progress to stderr (stdout keeps the answer or the JSON): rounds, follow-up queries,
    retrieval, searches, budget forcing and — for models trusted to answer clinically — the model's tokens as
    they are written. For an untrusted model only its parsed search queries are shown, never its raw text."""

    def __init__(self, trusted: bool, tokens: bool = True) -> None:
        self.trusted = trusted
        self.tokens = tokens and trusted
        self.stage = ""

    def __call__(self, ev: LoopEvent) -> None:
        if ev.kind == "round":
            self._line(f"\nRound {ev.round}: follow-up queries (model-written, used only for retrieval)", "cyan")
        elif ev.kind == "queries" and not self.tokens:  # the parsed queries when the raw text is not shown
            for i, q in enumerate(ev.items, 1):
                click.secho(f"  {i}. {q}", dim=True, err=True)
        elif ev.kind == "token" and self.tokens:
            if ev.stage != self.stage:
                self.stage = ev.stage
                if ev.stage == "final":
                    self._line("\nDraft answer (checked against the evidence below):", "cyan")
            click.secho(ev.text, nl=False, dim=ev.stage != "final", err=True)
        elif ev.kind == "generating" and not self.tokens:
            self._line(_GENERATING.get(ev.stage, f"Generating ({ev.stage}) …"), "cyan")
        elif ev.kind == "retrieved":
            self._line(f"Retrieved {len(ev.items)} passages", "cyan")
        elif ev.kind == "retry":
            self._line(f"\n(unusable output: {ev.text.split(': ', 1)[-1]}; asking again)", "yellow")
        elif ev.kind == "forced":
            self._line(f"\n({ev.stage}: {ev.text})", "yellow")
        elif ev.kind == "search":
            self._line(f"\n[search {ev.round}] {ev.text}", "cyan")
        elif ev.kind == "answers" and self.trusted:
            for text in ev.items:
                click.secho(f"  - {text}", dim=True, err=True)

    def _line(self, text: str, color: str) -> None:
        self.stage = ""
        click.secho(text, fg=color, err=True)


_GENERATING = {"queries": "Writing follow-up queries …", "followup": "Answering the follow-up queries …",
               "final": "Writing the final answer …", "search": "Reasoning and searching …"}


def render_answer(answer: Answer) -> None:
    """The human view: answer, option, numbered citations with quotes and identifiers, notes, disclaimer."""
    click.echo("")
    head = {"model": "Answer", "evidence": "Evidence", "none": "No answer"}.get(answer.answered_by, "Answer")
    click.secho(head + (" (insufficient evidence)" if answer.insufficient_evidence else ""), bold=True)
    click.echo(answer.answer)
    if answer.option and answer.answered_by == "model":
        click.secho(f"\nChosen option: {answer.option}", bold=True)
    if answer.citations and answer.answered_by == "model":
        click.secho("\nCitations:", bold=True)
        for i, c in enumerate(answer.citations, 1):
            ids = ", ".join(x for x in (f"PMID {c.pmid}" if c.pmid else "", f"doi:{c.doi}" if c.doi else "",
                                        c.url or "") if x)
            click.echo(f"[{i}] {c.title} ({c.source}{', ' + ids if ids else ''}) chunk {c.chunk_id}")
            click.secho(f"    \"{' '.join(c.quote.split())}\"", dim=True)
    elif answer.citations:
        click.secho("\nChunk ids: " + ", ".join(c.chunk_id for c in answer.citations), dim=True)
    for note in answer.notes:
        click.secho(f"note: {note}", fg="yellow", err=True)
    t = dict(answer.timings)
    if t:
        click.secho(f"\n{answer.model} | {t.get('total', 0):.1f}s (LLM {t.get('llm', 0):.1f}s, retrieval "
                    f"{t.get('retrieval', 0):.2f}s)", dim=True, err=True)
    click.secho(f"\n{answer.disclaimer}", fg="yellow")


@click.command("ask", help=_HELP)
@click.argument("question")
@click.option("--index", default="indexes/default", show_default=True, help="Index directory.")
@click.option("--llm", "llm_spec", default=None, metavar="SPEC", help=SPEC_HELP + ". Default: offline 270M.")
@click.option("--profile", default=None,
              help="Model profile: biomed-r1-8b, medix-r1-8b, r1, reasoning, chat, chat-untrusted, tiny-base, or a "
                   ".json file (default: tiny-base for the offline model, reasoning for a model you name).")
@click.option("--mode", type=click.Choice(ASK_MODES), default="followup", show_default=True)
@click.option("--preset", type=click.Choice(list(LOOP_PRESETS)), default="medrag", show_default=True,
              help="Loop settings: medrag's tuned defaults, or imedrag-paper (4 rounds x 3 queries, k=32, full "
                   "follow-up history, no early stop).")
@click.option("--rounds", type=click.IntRange(1, 20), default=None, help="Follow-up rounds [4].")
@click.option("--queries-per-round", type=click.IntRange(1, 10), default=None, help="Queries per round [3].")
@click.option("-k", "k", type=click.IntRange(1, 100), default=None,
              help="Chunks retrieved per query [4; imedrag-paper 32]; in rag mode, for the question [8].")
@click.option("--thinking-budget", "thinking_budget", multiple=True, metavar="[STAGE=]TOKENS",
              help="Thinking tokens per generation, for every stage or one (queries, followup, final, search); "
                   "repeatable. Default: the profile's.")
@click.option("--answer-budget", "answer_budget", multiple=True, metavar="[STAGE=]TOKENS",
              help="Answer tokens after thinking, for every stage or one; repeatable. Default: the profile's. A "
                   "generation that runs out while thinking is closed and continued once for its answer.")
@click.option("--option", "options", multiple=True, metavar='A="TEXT"', help="A multiple-choice option (repeat).")
@click.option("--retrieval", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True)
@click.option("--source", "sources", multiple=True, help="Only retrieve chunks of this source (repeat).")
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="llama.cpp CPU threads in all [all cores].")
@click.option("--parallel", type=click.IntRange(1, 16), default=None,
              help="llama.cpp model instances answering a round's follow-ups concurrently [1].")
@json_option
@click.option("--trace-out", type=click.Path(dir_okay=False), default=None, help="Save the trace as JSONL.")
@click.option("--no-stream", is_flag=True, help="Do not stream progress and tokens (to stderr).")
def ask(question: str, index: str, llm_spec: str | None, profile: str | None, mode: str, preset: str,
        rounds: int | None, queries_per_round: int | None, k: int | None, thinking_budget: tuple[str, ...],
        answer_budget: tuple[str, ...], options: tuple[str, ...], retrieval: str, sources: tuple[str, ...],
        threads: int | None, parallel: int | None, as_json: bool, trace_out: str | None, no_stream: bool) -> None:
    opts = parse_option_args(options)
    thinking = parse_budget_args(thinking_budget, "thinking-budget")
    answer_tokens = parse_budget_args(answer_budget, "answer-budget")
    llm_kw: dict[str, Any] = {k_: v for k_, v in (("n_threads", threads), ("parallel", parallel)) if v is not None}
    progress = (lambda msg: None) if no_stream else (lambda msg: click.secho(msg, fg="cyan", err=True))  # noqa: E731
    progress(f"Opening index {index} …")
    retriever = open_retriever(index, retrieval)
    progress("Loading the model …")
    llm = load_llm(llm_spec, profile=profile, **llm_kw)
    try:
        live = None if no_stream else _Live(llm.profile.clinical_answers, tokens=not as_json)
        answer = ask_api(question, index=retriever, llm=llm, options=opts or None, mode=mode, preset=preset,
                         rounds=rounds, queries_per_round=queries_per_round, k=k,
                         thinking_budget=thinking or None, answer_budget=answer_tokens or None,
                         filters={"source": list(sources)} if sources else None, on_event=live)
    finally:
        llm.close()
    if trace_out:
        save_trace(answer, trace_out)
    if as_json:
        emit_json(answer.to_dict())
    else:
        render_answer(answer)
    sys.stdout.flush()
