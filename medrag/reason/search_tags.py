"""Search inside reasoning (Search-R1 / Med-R³ style), in the protocol the model was trained on.

The tags come from the profile's :class:`~medrag.config.SearchProtocol` (presets ``medrag``, ``search-r1``,
``med-r3``). The model thinks and, when it needs evidence, writes ``<search>query</search>``. Generation stops
at the close tag; the loop retrieves the top ``k`` chunks and appends them to the model's own text inside the
protocol's results tag (``<results>`` with ``<evidence id="E3">`` blocks for ``medrag``; ``<information>`` with
``[E3] (Title: …) text`` lines for ``search-r1``), then generation resumes from there (a continued completion,
or a continued final assistant message for chat models; a protocol may prefill ``<think>``). At most ``max_searches``
searches run; after that a search is answered with a "limit reached" note. Only text the *model* generated
is parsed — inserted results can never act as a search or an answer — and ``<think>`` content is kept in the
trace and removed from the final answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..llm.thinking import ends_in_think, split_think
from ..retrieve.base import Filters, check_query
from ..types import Answer, TraceStep
from .answer import AnswerContext, assemble
from .evidence import format_block, format_line
from .loop import _Base
from .parsing import FinalDraft, ParseError, open_search, parse_final
from .runner import EventHandler, Runner, normalize_options, prompt_text

__all__ = ["SearchTagLoop"]

_LIMIT_NOTE = "(search limit reached: no more searches; answer from the evidence you have)"


class SearchTagLoop(_Base):
    """``SearchTagLoop(retriever, llm, config).run(question, options=None) -> Answer``."""

    def run(self, question: str, options: Mapping[str, str] | Sequence[str] | None = None, *,
            filters: Filters | Mapping[str, Any] | None = None, on_event: EventHandler | None = None) -> Answer:
        question = check_query(question)
        opts = normalize_options(options)
        r = self._runner(on_event, filters)
        p, sp = self.llm.profile, self.llm.profile.protocol
        prompt = r.prompts.search_tags(question, opts, self.config.max_searches)
        # the prefilled think tag is the model's own text as far as parsing is concerned
        prefill = f"{p.think_open}\n" if (sp.prefill_think and p.think_open) else ""
        transcript, model_text, trace, notes = "", prefill, [], []
        cue = sp.answer_open or "Answer:"
        searches = 0
        for step_no in range(1, self.config.max_searches + 3):
            r.new_step()
            current = r.prompts.continue_with(prompt, transcript) if transcript else prompt
            opened = ends_in_think(prefill + transcript, p.think_open, p.think_close)
            gen = r.generate_one(current, "search", stop=(sp.search_close,), round_=step_no, cue=cue, opened=opened)
            transcript += gen.text
            model_text += gen.text
            query = open_search(gen.text, sp.search_open, sp.search_close) if gen.finish_reason != "length" else None
            if query is None:
                trace.append(r.step(step_no, "search-tag", prompts=(prompt_text(current),), outputs=(gen.text,)))
                break
            r.emit("search", round=step_no, text=query)
            model_text += f"{sp.search_close}\n"
            if searches >= self.config.max_searches:
                transcript += f"{sp.search_close}\n{sp.results_open}\n{_LIMIT_NOTE}\n{sp.results_close}\n"
                notes.append(f"search limit ({self.config.max_searches}) reached")
                trace.append(r.step(step_no, "search-tag", queries=(query,), prompts=(prompt_text(current),),
                                    outputs=(gen.text,)))
                continue
            (hits,), steps = r.search([query], self.config.k)
            searches += 1
            block = "\n".join(_blocks(r, hits, sp.doc_format))
            transcript += f"{sp.search_close}\n{sp.results_open}\n{block}\n{sp.results_close}\n"
            trace.append(r.step(step_no, "search-tag", queries=(query,), retrievals=steps,
                                prompts=(prompt_text(current),), outputs=(gen.text,)))
        else:
            notes.append("the model kept searching past the step limit")
        draft = self._draft(r, prompt, transcript, model_text, opts, trace, notes)
        if searches == 0:
            notes.append("the model did not search; evidence for the question itself was retrieved")
            r.new_step()
            _, steps = r.search([question], self.config.k)
            trace.append(r.step(len(trace), "retrieve", queries=(question,), retrievals=steps))
        ctx = AnswerContext(question, opts, r.evidence, self.config, self.llm.profile, self.llm.name,
                            tuple(trace), r.run_clock.timings(), tuple(notes))
        answer = assemble(ctx, draft)
        r.emit("final", text=answer.answer)
        return answer

    def _draft(self, r: Runner, prompt: Any, transcript: str, model_text: str, opts: dict[str, str],
               trace: list[TraceStep], notes: list[str]) -> FinalDraft | None:
        """Parse the answer from the model's own text; if missing, ask for it (``parse_retries`` times)."""
        p, sp = self.llm.profile, self.llm.profile.protocol
        retries = self.config.parse_retries if p.clinical_answers else 0
        for attempt in range(retries + 1):
            _, visible = split_think(model_text, p.think_open, p.think_close)
            try:
                return parse_final(visible, opts)
            except ParseError as exc:
                notes.append(f"search-tags answer attempt {attempt + 1}: {exc}")
            if attempt == retries:
                break
            # close an open think block and ask for the answer
            suffix = "\n"
            if p.think_close and ends_in_think(model_text, p.think_open, p.think_close):
                suffix += p.think_close + "\n"
            suffix += sp.answer_open or "Answer:"
            transcript += suffix
            model_text += suffix
            r.new_step()
            current = r.prompts.continue_with(prompt, transcript)
            gen = r.generate_one(current, "search", stop=(sp.search_open,), attempt=attempt + 1,
                                 cue=sp.answer_open or "Answer:", opened=False)
            transcript += gen.text
            model_text += gen.text
            trace.append(r.step(len(trace), "final", prompts=(prompt_text(current),), outputs=(gen.text,)))
        return None


def _blocks(r: Runner, hits: Sequence[Any], doc_format: str) -> list[str]:
    evs = r.evidence.add(hits)
    r.evidence.shown.update(ev.label for ev in evs)
    if doc_format == "labelled":
        return [format_line(ev, r.config.evidence_chars) for ev in evs]
    return [format_block(ev, r.config.evidence_chars) for ev in evs]
