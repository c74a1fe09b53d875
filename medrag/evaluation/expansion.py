"""LLM query expansion for retrieval: HyDE, query2doc and a reasoning-driven expansion (the follow-up loop).

* ``hyde`` (Gao et al., 2022): the model writes a hypothetical passage answering the query; retrieval runs on
  the passage alone (as R2MED's BM25 evaluation does).
* ``query2doc`` (Wang et al., 2023): retrieval runs on the query repeated ``query2doc_repeat`` times followed
  by the generated passage, so the passage does not drown the query's own terms in sparse scoring.
* ``reason``: :class:`medrag.reason.FollowUpLoop` runs on the task's own index; its follow-up queries and its
  reasoning are appended to the query.

Generations are cached per query (``ItemCache``) under a key of method, model and prompt settings, so a rerun,
or the same expansion evaluated with another retrieval mode, costs nothing. Precomputed passages in R2MED's
``query_with_hydoc.jsonl`` format (``{"id", "text", "hy_doc"}``) can be used instead of a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import EvaluationError, InputError
from ..reason import FollowUpLoop
from .data import read_jsonl
from .generation import generate_stage, stage_budget, visible
from .records import ItemCache, config_fingerprint

__all__ = ["compose_query", "passage_prompt", "load_expansions", "expand_queries", "reason_expansion"]

log = logging.getLogger(__name__)

_SHOT_Q = "What causes scurvy?"
_SHOT_P = ("Scurvy is caused by a prolonged lack of vitamin C (ascorbic acid) in the diet. Vitamin C is needed "
           "to make collagen, so deficiency leads to bleeding gums, poor wound healing and bruising.")


def compose_query(method: str, query: str, expansion: str, repeat: int = 2) -> str:
    """The text retrieval runs on (falls back to the query when the expansion is empty)."""
    expansion = " ".join(expansion.split())
    if not expansion:
        return query
    if method == "hyde":
        return expansion
    if method == "query2doc":
        return " ".join([query] * repeat + [expansion])
    if method == "reason":
        return f"{query}\n{expansion}"
    raise InputError(f"unknown expansion method {method!r}; known: hyde, query2doc, reason")


def passage_prompt(query: str, chat: bool) -> Any:
    """Prompt asking for a short passage that answers ``query`` (HyDE and query2doc share it)."""
    if chat:
        return [{"role": "user", "content": "Write a short passage from a medical reference that answers the "
                                            f"question. Reply with the passage only.\n\nQuestion: {query}"}]
    return ("Write a short passage from a medical reference that answers the question.\n\n"
            f"Question: {_SHOT_Q}\nPassage: {_SHOT_P}\n\nQuestion: {query}\nPassage:")


def load_expansions(path: str | Path) -> dict[str, str]:
    """Query id -> precomputed passage from an R2MED ``query_with_hydoc.jsonl`` style file."""
    out: dict[str, str] = {}
    for obj in read_jsonl(path):
        if "id" not in obj or "hy_doc" not in obj:
            raise InputError(f"{path}: each line needs 'id' and 'hy_doc' (R2MED's query_with_hydoc.jsonl format)")
        out[str(obj["id"])] = str(obj["hy_doc"])
    return out


def _llm_key(llm: Any) -> dict[str, Any]:
    profile = getattr(llm, "profile", None)
    return {"model": getattr(llm, "name", type(llm).__name__), "profile": asdict(profile) if profile else None}


def expand_queries(queries: Mapping[str, str], method: str, cache_dir: Path, *, llm: Any = None,
                   max_tokens: int = 128, thinking_tokens: int | None = None, precomputed: Mapping[str, str] | None = None,
                   reason: Callable[[str], str] | None = None, batch: int = 8,
                   progress: Callable[[int], None] | None = None,
                   key_extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Query id -> expansion text (generated, cached, or precomputed). ``key_extra`` joins the cache key
    (the loop config of the ``reason`` expansion). ``max_tokens`` is the passage's budget; a thinking
    profile also gets ``thinking_tokens`` (``None``: its profile's ``expansion`` budget) and its thinking
    — closed or cut off — never reaches the passage."""
    if precomputed is not None:
        missing = sorted(set(queries) - set(precomputed))
        if missing:
            raise EvaluationError(f"precomputed expansions lack {len(missing)} queries (e.g. {missing[0]})")
        return {q: precomputed[q] for q in queries}
    if llm is None:
        raise EvaluationError(f"expansion {method!r} needs an LLM (--llm) or precomputed --expansions")
    budget = stage_budget(llm, "expansion", answer=max_tokens, thinking=thinking_tokens)
    key = {"method": "passage" if method in ("hyde", "query2doc") else method, **_llm_key(llm),
           "max_tokens": max_tokens, **dict(key_extra or {})}
    if budget.thinking:
        key["thinking_tokens"] = budget.thinking
    cache = ItemCache(cache_dir / f"expansions-{config_fingerprint(key)}.jsonl")
    todo = [q for q in sorted(queries) if q not in cache]
    if progress:
        progress(len(queries) - len(todo))
    for start in range(0, len(todo), batch):
        part = todo[start:start + batch]
        if method == "reason":
            if reason is None:
                raise EvaluationError("the reason expansion needs the follow-up loop (an index and an LLM)")
            texts = [reason(queries[q]) for q in part]
        else:
            texts = _passages(llm, [queries[q] for q in part], budget)
        for q, text in zip(part, texts, strict=True):
            cache.put(q, text)
        if progress:
            progress(len(part))
    return {q: cache.get(q) for q in queries}


def _passages(llm: Any, queries: Sequence[str], budget: Any) -> list[str]:
    chat = getattr(getattr(llm, "profile", None), "prompt_style", "completion") == "chat"
    prompts = [passage_prompt(q, chat) for q in queries]
    stop = () if chat else ("\n\n", "\nQuestion:")
    gens = generate_stage(llm, prompts, budget, stop=stop, cue="")
    return [visible(g.text, llm).strip() for g in gens]


def reason_expansion(retriever: Any, llm: Any, loop_config: Any = None) -> Callable[[str], str]:
    """A function query -> the follow-up loop's queries and reasoning (one line each)."""
    loop = FollowUpLoop(retriever, llm, loop_config)

    def run(query: str) -> str:
        answer = loop.run(query)
        queries = [q for step in answer.trace for q in step.queries if q.strip() and q.strip() != query.strip()]
        parts = list(dict.fromkeys(queries))
        if answer.reasoning.strip():
            parts.append(answer.reasoning.strip())
        return "\n".join(parts)

    return run
