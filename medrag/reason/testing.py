"""Test doubles for the reasoning loops: a scripted LLM and a tiny in-memory term-overlap retriever.

They let you test loop logic (rounds, early stop, search tags, parse failures, injection) without a model
or an index, and are used by medrag's own tests. Not for production use.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import MODEL_PROFILES, ModelProfile
from ..llm.base import BaseLLM, Generation, GenerationParams, Prompt, apply_stops
from ..retrieve.base import Filters, check_k, check_query
from ..types import Hit, Metadata
from .text import terms

__all__ = ["ScriptedLLM", "ToyRetriever", "Reply"]

#: a reply: fixed text, or a function of (prompt text, call number) returning text
Reply = str | Callable[[str, int], str]
#: a "token" of scripted output: a word with its trailing whitespace
_PIECE = re.compile(r"\S+\s*|\s+")


class ScriptedLLM(BaseLLM):
    """Answers from a script. ``rules``: (regex, reply) pairs tried in order against the prompt text (the
    first match wins; each rule may be a list of replies consumed one per call, the last one repeating).
    ``stop`` strings and ``max_tokens`` (one token = one word with its trailing whitespace; finish_reason
    ``length``) are honoured like a real backend. Every call is recorded in ``calls`` (prompts of one
    ``generate`` call) and ``prompts`` (flat)."""

    def __init__(self, rules: Sequence[tuple[str, Reply | Sequence[Reply]]], *,
                 profile: ModelProfile | str = "chat", name: str = "scripted") -> None:
        self.profile = MODEL_PROFILES[profile] if isinstance(profile, str) else profile
        self.name = name
        self._rules = [(re.compile(p, re.DOTALL | re.IGNORECASE), r if isinstance(r, list) else [r])
                       for p, r in rules]
        self._used = [0] * len(self._rules)
        self._lock = threading.Lock()
        self.calls: list[list[str]] = []
        self.prompts: list[str] = []

    @staticmethod
    def text_of(prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        return "\n".join(f"[{m['role']}] {m['content']}" for m in prompt)

    def _reply(self, text: str) -> str:
        with self._lock:
            for i, (pattern, replies) in enumerate(self._rules):
                if pattern.search(text):
                    reply = replies[min(self._used[i], len(replies) - 1)]
                    self._used[i] += 1
                    n = self._used[i]
                    break
            else:
                raise AssertionError(f"ScriptedLLM: no rule matches prompt: {text[-300:]!r}")
        return reply(text, n) if callable(reply) else str(reply)

    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Generation]:
        texts = [self.text_of(p) for p in prompts]
        with self._lock:
            self.calls.append(texts)
            self.prompts.extend(texts)
        out = []
        for text in texts:
            reply, stopped = apply_stops(self._reply(text), self.stops(params))
            pieces = _PIECE.findall(reply)
            if not stopped and len(pieces) > params.max_tokens:  # max_tokens honoured, like a real backend
                out.append(Generation("".join(pieces[: params.max_tokens]), "length", len(text.split()),
                                      params.max_tokens))
            else:
                out.append(Generation(reply, "stop", len(text.split()), len(pieces)))
        return out

    def stream(self, prompt: Prompt, params: GenerationParams | None = None) -> Iterator[str]:
        text = self.generate([prompt], params)[0].text
        yield from _PIECE.findall(text)

    def stream_generate(self, prompt: Prompt, params: GenerationParams | None,
                        on_text: Callable[[str], None]) -> Generation:
        gen = self.generate([prompt], params)[0]
        for piece in _PIECE.findall(gen.text):
            on_text(piece)
        return gen


class ToyRetriever:
    """Ranks chunks by the number of query terms they contain (ties: corpus order). Hits with no shared
    term are still returned when ``always_return`` (like a dense retriever, which always has neighbours)."""

    def __init__(self, hits: Sequence[Hit], *, always_return: bool = True) -> None:
        self.hits = list(hits)
        self.always_return = always_return
        self.batches: list[list[str]] = []
        self._terms = [terms(f"{h.title} {h.section} {h.text}") for h in self.hits]

    @classmethod
    def from_jsonl(cls, path: str | Path, **kw: Any) -> ToyRetriever:
        hits = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            md = Metadata(pmid=d.get("pmid"), doi=d.get("doi"), year=d.get("year"))
            hits.append(Hit(d["chunk_id"], d["doc_id"], 0.0, 0, d["text"], d["title"], d.get("section", ""),
                            d.get("source", "toy"), md))
        return cls(hits, **kw)

    def search(self, query: str, k: int = 10, filters: Filters | Mapping[str, Any] | None = None) -> list[Hit]:
        return self.batch_search([query], k, filters)[0]

    def batch_search(self, queries: Sequence[str], k: int = 10,
                     filters: Filters | Mapping[str, Any] | None = None) -> list[list[Hit]]:
        check_k(k)
        self.batches.append([check_query(q) for q in queries])
        out = []
        for q in queries:
            qt = terms(q)
            scored = sorted(((len(qt & t), -i) for i, t in enumerate(self._terms)), reverse=True)
            ranked = [(s, -neg) for s, neg in scored if s > 0 or self.always_return][:k]
            out.append([_with_rank(self.hits[i], float(s), r) for r, (s, i) in enumerate(ranked, 1)])
        return out


def _with_rank(hit: Hit, score: float, rank: int) -> Hit:
    return Hit(hit.chunk_id, hit.doc_id, score, rank, hit.text, hit.title, hit.section, hit.source, hit.metadata)
