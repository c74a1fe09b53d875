"""Search inside reasoning (Search-R1 / Med-R³ style).

The model thinks and, when it needs evidence, writes ``<search>query</search>``. Generation stops at
``</search>``; the loop retrieves the top ``k`` chunks and appends them to the model's own text as
``</search>\\n<results>\\n<evidence id="E3" …>…</evidence>\\n</results>\\n``, then generation resumes from there
(a continued completion, or a continued final assistant message for chat models). At most ``max_searches``
searches run; after that a search is answered with a "limit reached" note. Only text the *model* generated
is parsed — inserted results can never act as a search or an answer — and ``<think>`` content is kept in the
trace and removed from the final answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..retrieve.base import Filters, check_query
from ..types import Answer, TraceStep
from .answer import AnswerContext, assemble
from .evidence import format_block
from .loop import _Base
from .parsing import FinalDraft, ParseError, open_search, parse_final, split_think
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
        prompt = r.prompts.search_tags(question, opts, self.config.max_searches)
        transcript, model_text, trace, notes = "", "", [], []
        searches = 0
        for step_no in range(1, self.config.max_searches + 3):
            r.new_step()
            current = r.prompts.continue_with(prompt, transcript) if transcript else prompt
            gen = r.generate_one(current, r.params(self._final_tokens(), ("</search>",)),
                                 "search-tags", step_no)
            transcript += gen.text
            model_text += gen.text
            query = open_search(gen.text) if gen.finish_reason != "length" else None
            if query is None:
                trace.append(r.step(step_no, "search-tag", prompts=(prompt_text(current),), outputs=(gen.text,)))
                break
            r.emit("search", round=step_no, text=query)
            if searches >= self.config.max_searches:
                transcript += f"</search>\n<results>\n{_LIMIT_NOTE}\n</results>\n"
                model_text += "</search>\n"
                notes.append(f"search limit ({self.config.max_searches}) reached")
                trace.append(r.step(step_no, "search-tag", queries=(query,), prompts=(prompt_text(current),),
                                    outputs=(gen.text,)))
                continue
            (hits,), steps = r.search([query], self.config.k)
            searches += 1
            block = "\n".join(_blocks(r, hits))
            transcript += f"</search>\n<results>\n{block}\n</results>\n"
            model_text += "</search>\n"
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
        p = self.llm.profile
        retries = self.config.parse_retries if p.clinical_answers else 0
        for attempt in range(retries + 1):
            thinking, visible = split_think(model_text, p.think_open, p.think_close)
            try:
                return parse_final(visible, opts)
            except ParseError as exc:
                notes.append(f"search-tags answer attempt {attempt + 1}: {exc}")
            if attempt == retries:
                break
            # close an open think block and ask for the answer
            suffix = "\n"
            if p.think_close and thinking and model_text.rfind(p.think_open or "") > model_text.rfind(p.think_close):
                suffix += p.think_close + "\n"
            suffix += "Answer:"
            transcript += suffix
            model_text += suffix
            r.new_step()
            current = r.prompts.continue_with(prompt, transcript)
            gen = r.generate_one(current, r.params(self._final_tokens(), ("<search>",), attempt),
                                 "search-tags")
            transcript += gen.text
            model_text += gen.text
            trace.append(r.step(len(trace), "final", prompts=(prompt_text(current),), outputs=(gen.text,)))
        return None


def _blocks(r: Runner, hits: Sequence[Any]) -> list[str]:
    evs = r.evidence.add(hits)
    r.evidence.shown.update(ev.label for ev in evs)
    return [format_block(ev, r.config.evidence_chars) for ev in evs]
