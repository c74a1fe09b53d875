"""Reasoning over retrieved evidence: the i-MedRAG follow-up loop, single-pass RAG and the search-tag loop.

>>> from medrag.reason import FollowUpLoop
>>> answer = FollowUpLoop(retriever, llm).run("Which anticoagulant for AF with CrCl 25 ml/min?")

``FollowUpLoop(retriever, llm, config=None).run(question, options=None, *, filters=None, on_event=None)``
returns an :class:`~medrag.types.Answer`; so do :class:`SinglePassRAG` and :class:`SearchTagLoop`.
``medrag.ask(...)`` wraps them with index and model loading. Every answer passes the honesty rules of
:mod:`medrag.reason.answer` (relevance floor, grounding, evidence instead of answers from untrusted models).
"""

from __future__ import annotations

from .answer import DISCLAIMER
from .api import ask
from .loop import FollowUpLoop, SinglePassRAG
from .runner import LoopEvent
from .search_tags import SearchTagLoop

__all__ = ["FollowUpLoop", "SinglePassRAG", "SearchTagLoop", "LoopEvent", "ask", "DISCLAIMER"]
