"""Markdown → (title, sections) for the textbook and guideline parsers.

ATX headings (``#`` … ``######``) open sections; fenced code blocks are never split. The first level-1
heading, when it comes before any other text, is the document's title and not part of a heading path; every
other heading opens a section whose heading is the path of enclosing headings (``Dosing > Renal``). Text
before the first heading forms a section with an empty heading.
"""

from __future__ import annotations

import re

from ..types import Section

__all__ = ["split_markdown", "paragraph_sections"]

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")
_INLINE_MARK = re.compile(r"(\*\*|__|`)")


def _heading_text(raw: str) -> str:
    return _INLINE_MARK.sub("", raw).strip()


def split_markdown(text: str) -> tuple[str, list[Section]]:
    """``(title, sections)`` of a markdown text; ``title`` is "" when it has no leading level-1 heading."""
    title = ""
    path: list[tuple[int, str]] = []  # (level, heading) of the open headings
    sections: list[Section] = []
    body: list[str] = []
    heading = ""
    in_fence = False
    seen_text = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            body.append(line)
            seen_text = seen_text or bool(line.strip())
            continue
        _close(heading, body, sections)
        body = []
        level, name = len(match.group(1)), _heading_text(match.group(2))
        if level == 1 and not title and not seen_text and not sections:
            title = name
            heading = ""
            continue
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, name))
        heading = " > ".join(h for _, h in path)
        seen_text = True
    _close(heading, body, sections)
    return title, sections


def _close(heading: str, body: list[str], sections: list[Section]) -> None:
    text = "\n".join(body).strip("\n")
    if text.strip():
        sections.append(Section(heading, text.strip()))


def paragraph_sections(text: str) -> list[Section]:
    """Plain text → one heading-less section per paragraph (paragraphs are separated by blank lines)."""
    return [Section("", p.strip()) for p in _BLANK_LINES.split(text) if p.strip()]
