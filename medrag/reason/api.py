"""``medrag.ask``: one call from a question to a cited :class:`~medrag.types.Answer`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ..config import ASK_MODES, LOOP_PRESETS, LLMConfig, LoopConfig, ModelProfile
from ..errors import ConfigError
from ..llm import load_llm
from ..llm.base import LLM
from ..retrieve.base import Filters, Retriever
from ..types import Answer
from .loop import FollowUpLoop, SinglePassRAG
from .runner import EventHandler
from .search_tags import SearchTagLoop

__all__ = ["ask", "make_loop", "loop_config", "open_retriever", "with_budgets"]

_LOOP_FIELDS = frozenset(f.name for f in fields(LoopConfig))
_LLM_FIELDS = frozenset(f.name for f in fields(LLMConfig))


def loop_config(base: LoopConfig | None = None, **overrides: Any) -> LoopConfig:
    """``base`` (default LoopConfig()) with ``overrides``; None values are ignored."""
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - _LOOP_FIELDS)
    if unknown:
        raise ConfigError(f"unknown loop option(s) {', '.join(unknown)}; known: {', '.join(sorted(_LOOP_FIELDS))}")
    return replace(base or LoopConfig(), **given)


def make_loop(mode: str, retriever: Retriever, llm: LLM, config: LoopConfig) -> Any:
    """The loop object for ``mode`` (``followup``, ``rag`` or ``search-tags``)."""
    if mode == "followup":
        return FollowUpLoop(retriever, llm, config)
    if mode == "rag":
        return SinglePassRAG(retriever, llm, config)
    if mode == "search-tags":
        return SearchTagLoop(retriever, llm, config)
    raise ConfigError(f"mode must be one of {', '.join(ASK_MODES)}, got {mode!r}")


def ask(question: str, *, index: str | os.PathLike[str] | Retriever = "indexes/default",
        llm: str | LLM | None = None, options: Mapping[str, str] | Sequence[str] | None = None,
        mode: str = "followup", rounds: int | None = None, queries_per_round: int | None = None,
        k: int | None = None, profile: str | ModelProfile | None = None, config: LoopConfig | None = None,
        preset: str | None = None, thinking_budget: Mapping[str, int] | int | None = None,
        answer_budget: Mapping[str, int] | int | None = None,
        filters: Filters | Mapping[str, Any] | None = None, retrieval_mode: str = "hybrid",
        on_event: EventHandler | None = None, **kw: Any) -> Answer:
    """Answer ``question`` from the index with citations (see ``medrag ask --help``).

    ``index``: an index directory (opened with ``medrag.load_index(index, mode=retrieval_mode)``) or any
    :class:`~medrag.retrieve.base.Retriever`. ``llm``: a spec string (``None`` = the offline default, which
    shows evidence rather than answering), or an :class:`~medrag.llm.LLM` you created (not closed here).
    ``options``: multiple-choice options (``{"A": "...", ...}`` or a list). ``mode``: ``followup`` (i-MedRAG
    loop, ``rounds`` x ``queries_per_round``), ``rag`` (single pass) or ``search-tags``. ``k``: chunks per
    query (in ``rag`` mode: chunks for the question, i.e. ``final_k``). ``preset``: a name from
    ``LOOP_PRESETS`` (``medrag`` defaults, ``imedrag-paper``) used as the base config. ``thinking_budget`` /
    ``answer_budget``: tokens for every stage (an int) or per stage (``{"final": 4096}``, ``"*"`` = all),
    over the profile's budgets. Other keyword arguments set :class:`~medrag.config.LoopConfig` fields
    (``final_k=``, ``max_searches=`` …) or, when ``llm`` is a spec, :class:`~medrag.config.LLMConfig` fields
    (``n_threads=``, ``read_timeout=`` …).
    """
    loop_kw = {k_: v for k_, v in kw.items() if k_ in _LOOP_FIELDS}
    llm_kw = {k_: v for k_, v in kw.items() if k_ in _LLM_FIELDS and k_ not in _LOOP_FIELDS}
    unknown = sorted(set(kw) - set(loop_kw) - set(llm_kw))
    if unknown:
        raise ConfigError(f"unknown ask option(s): {', '.join(unknown)}")
    if mode == "rag" and k is not None:
        loop_kw.setdefault("final_k", k)  # single pass: k chunks for the question itself
    if preset is not None and preset not in LOOP_PRESETS:
        raise ConfigError(f"unknown loop preset {preset!r}; presets: {', '.join(LOOP_PRESETS)}")
    base = config or (LOOP_PRESETS[preset] if preset else None)
    cfg = loop_config(base, rounds=rounds, queries_per_round=queries_per_round, k=k, **loop_kw)
    if mode not in ASK_MODES:
        raise ConfigError(f"mode must be one of {', '.join(ASK_MODES)}, got {mode!r}")
    retriever = open_retriever(index, retrieval_mode)
    own_llm = not hasattr(llm, "generate")
    if own_llm:
        model = load_llm(llm if isinstance(llm, str) or llm is None else str(llm), profile=profile, **llm_kw)
    else:
        if llm_kw or profile is not None:
            raise ConfigError("LLM options and profile apply only when llm is a spec string")
        model = llm  # type: ignore[assignment]
    try:
        cfg = with_budgets(cfg, model.profile, thinking_budget, answer_budget)
        return make_loop(mode, retriever, model, cfg).run(question, options, filters=filters, on_event=on_event)
    finally:
        if own_llm:
            model.close()


def with_budgets(cfg: LoopConfig, profile: ModelProfile, thinking: Mapping[str, int] | int | None,
                 answer: Mapping[str, int] | int | None) -> LoopConfig:
    """``cfg`` whose budgets are the ones in force for ``profile`` with the given thinking/answer tokens."""
    if thinking is None and answer is None:
        return cfg
    as_map = (lambda v: {"*": v} if isinstance(v, int) else dict(v or {}))  # noqa: E731
    budgets = cfg.budgets_for(profile).with_overrides(as_map(thinking), as_map(answer))
    return replace(cfg, budgets=budgets)


def open_retriever(index: str | os.PathLike[str] | Retriever, retrieval_mode: str = "hybrid") -> Retriever:
    """``index`` itself when it is a Retriever, else ``medrag.load_index(index, mode=retrieval_mode)``."""
    if hasattr(index, "batch_search"):
        return index  # type: ignore[return-value]
    from ..retrieve.load import load_index  # deferred: pyarrow (via medrag.retrieve.load)

    return load_index(Path(index), mode=retrieval_mode)
