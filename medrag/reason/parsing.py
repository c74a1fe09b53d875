"""Tolerant parsing of model output: think blocks, follow-up queries, final answers, search tags.

Nothing here evaluates model output as code. JSON is read with ``json.JSONDecoder.raw_decode``; everything
else with regular expressions over a line/tag format. A parser that finds nothing usable raises
:class:`ParseError`, and the loops retry (see ``LoopConfig.parse_retries``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..llm.thinking import split_think
from .text import terms

__all__ = [
    "ParseError",
    "split_think",
    "strip_think",
    "parse_queries",
    "QueryPlan",
    "FinalDraft",
    "parse_final",
    "parse_option",
    "cited_labels",
    "remove_labels",
    "strip_labels",
    "open_search",
    "first_json_object",
    "NOT_FOUND",
    "INSUFFICIENT",
]

NOT_FOUND = "Not found in the evidence."
INSUFFICIENT = "Insufficient evidence."

_LABEL = re.compile(r"\[\s*(E\d+(?:\s*[,;]\s*E?\d+)*)\s*\]", re.IGNORECASE)
_QUERY_LINE = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•]|q(?:uery)?\s*\d*\s*[:.)])\s*(.+?)\s*$", re.IGNORECASE)
_HEADER = re.compile(r"^\s*[*#_]*\s*(reasoning|answer|option|quotes?|citations?)\s*[*_]*\s*:\s*[*_]*\s*(.*)$",
                     re.IGNORECASE)
_QUOTE_LINE = re.compile(r"\[\s*(E\d+)\s*\]\s*[:\-–]?\s*[\"“'](.+?)[\"”']\s*$", re.IGNORECASE)


class ParseError(ValueError):
    """Model output did not contain what the prompt asked for."""


def strip_think(text: str, open_tag: str | None, close_tag: str | None, *, opened: bool = False) -> str:
    """``text`` without thinking (an unclosed think block never leaks; see :func:`split_think`)."""
    return split_think(text, open_tag, close_tag, opened=opened)[1]


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object embedded in ``text`` (code fences and prose around it are ignored)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


@dataclass(frozen=True)
class QueryPlan:
    """Parsed follow-up step: new queries, or ``enough`` when the model says it can answer."""

    queries: tuple[str, ...] = ()
    enough: bool = False


def _clean_query(q: str) -> str:
    q = re.sub(r"^[\"'“]+|[\"'”]+$", "", q.strip()).strip()
    return q[:300]


def parse_queries(text: str, *, limit: int, seen: Sequence[str] = (), prefix: str = "",
                  allow_enough: bool = True) -> QueryPlan:
    """Follow-up queries from numbered/bulleted lines or ``{"queries": [...], "enough": bool}``.

    ``prefix`` is prompt text the output continues (``"1."`` for completion prompts). Queries already in
    ``seen`` (case-insensitive) and duplicates are dropped. ENOUGH on the first line means enough — unless
    ``allow_enough`` is False (no early stop), when it is unusable output.
    """
    text = prefix + text
    obj = first_json_object(text)
    if obj is not None and ("queries" in obj or "enough" in obj):
        raw = obj.get("queries") or []
        queries = [q for q in raw if isinstance(q, str)] if isinstance(raw, list) else []
        return _plan(queries, allow_enough and obj.get("enough") is True, limit, seen)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and re.match(r"^\W*enough\b", lines[0].strip(), re.IGNORECASE):
        if not allow_enough:
            raise ParseError("ENOUGH is not allowed here: write new search queries")
        return QueryPlan((), True)
    queries = [m.group(1) for m in map(_QUERY_LINE.match, lines) if m]
    return _plan(queries, False, limit, seen)


def _plan(queries: Sequence[str], enough: bool, limit: int, seen: Sequence[str]) -> QueryPlan:
    known = {s.strip().lower() for s in seen}
    out: list[str] = []
    for q in map(_clean_query, queries):
        key = q.lower()
        if len(q) < 3 or not terms(q) or key in known or key == "enough":
            continue
        known.add(key)
        out.append(q)
    if not out and not enough:
        raise ParseError("no follow-up queries and no ENOUGH in the output")
    return QueryPlan(tuple(out[:limit]), enough and not out)


@dataclass(frozen=True)
class FinalDraft:
    """A parsed final answer before grounding."""

    answer: str
    option: str | None = None
    reasoning: str = ""
    quotes: tuple[tuple[str, str], ...] = field(default=())  # (label, quote)
    insufficient: bool = False


def parse_option(raw: str | None, options: Mapping[str, str]) -> str | None:
    """A valid option letter from ``"B"``, ``"(B)"``, ``"B) text"``, ``"Option B"`` or the option's text."""
    if not raw or not options:
        return None
    raw = raw.strip()
    m = re.match(r"^\W*(?:option\s*)?([A-Za-z])(?:\W|$)", raw, re.IGNORECASE)
    if m and m.group(1).upper() in options:
        return m.group(1).upper()
    low = raw.lower().strip(" .")
    hits = [k for k, v in options.items() if v.strip().lower() == low]
    return hits[0] if len(hits) == 1 else None


def parse_final(text: str, options: Mapping[str, str] | None = None) -> FinalDraft:
    """Reasoning / Answer / Option / Quotes sections (or ``<answer>`` tags, or a JSON object)."""
    options = options or {}
    obj = first_json_object(text)
    if obj is not None and isinstance(obj.get("answer"), str):
        quotes = _json_quotes(obj.get("quotes") or obj.get("citations"))
        return _draft(obj["answer"], obj.get("option"), str(obj.get("reasoning") or ""), quotes, options)
    m = re.search(r"<answer>(.*?)(?:</answer>|$)", text, re.IGNORECASE | re.DOTALL)
    if m and m.group(1).strip():  # an answer tag holds the answer (with or without Answer:/Quotes: sections)
        inner = m.group(1).strip()
        text = inner if _HEADER.match(inner.splitlines()[0]) else "Answer: " + inner
    sections = _sections(text)
    if "answer" not in sections or not sections["answer"].strip():
        raise ParseError("no 'Answer:' section in the output")
    quotes = tuple(
        (m.group(1).upper(), m.group(2).strip())
        for m in map(_QUOTE_LINE.search, sections.get("quotes", "").splitlines()) if m
    )
    return _draft(sections["answer"], sections.get("option"), sections.get("reasoning", ""), quotes, options)


def _draft(answer: str, option: Any, reasoning: str, quotes: tuple[tuple[str, str], ...],
           options: Mapping[str, str]) -> FinalDraft:
    answer = answer.strip()
    opt = parse_option(option if isinstance(option, str) else None, options)
    if options and opt is None:
        opt = parse_option(answer, options) if re.match(r"^\W*(?:option\s*)?[A-Za-z]\W", answer + " ") else None
    insufficient = answer.lower().startswith("insufficient evidence")
    return FinalDraft(answer, opt, reasoning.strip(), quotes, insufficient)


def _sections(text: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            name = m.group(1).lower()
            current = "quotes" if name.startswith(("quote", "citation")) else name
            if current in sections:  # a repeated header ends the useful part
                break
            sections[current] = [m.group(2)]
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


def _json_quotes(raw: Any) -> tuple[tuple[str, str], ...]:
    out = []
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str) and isinstance(item.get("quote"), str):
                out.append((item["id"].upper(), item["quote"]))
    return tuple(out)


def cited_labels(text: str) -> list[str]:
    """Evidence labels cited as ``[E3]`` / ``[E1, E4]`` / ``[E1, 4]``, in order of first citation."""
    out: list[str] = []
    for m in _LABEL.finditer(text):
        for part in re.split(r"\s*[,;]\s*", m.group(1)):
            label = part.upper() if part.upper().startswith("E") else f"E{part}"
            if label not in out:
                out.append(label)
    return out


def strip_labels(text: str) -> str:
    """``text`` without any citation brackets."""
    return _LABEL.sub("", text)


def remove_labels(text: str, labels: Sequence[str]) -> str:
    """Drop the given labels from citation brackets (a bracket left empty disappears)."""
    drop = {lab.upper() for lab in labels}

    def repl(m: re.Match[str]) -> str:
        keep = [p for p in re.split(r"\s*[,;]\s*", m.group(1))
                if (p.upper() if p.upper().startswith("E") else f"E{p}") not in drop]
        return f"[{', '.join(keep)}]" if keep else ""

    return re.sub(r"\s+([.,;])", r"\1", _LABEL.sub(repl, text)).strip()


def open_search(text: str, open_tag: str = "<search>", close_tag: str = "</search>") -> str | None:
    """The query of a search tag left open at the end of ``text`` (generation stopped at the close tag), or
    None."""
    pos = text.lower().rfind(open_tag.lower())
    if pos < 0 or close_tag.lower() in text[pos:].lower():
        return None
    query = " ".join(text[pos + len(open_tag):].split())
    return query[:300] or None
