"""The rules behind the R1-style STAND-IN model (see :mod:`medrag.testing.standin_r1`). Not a model.

:func:`reply` reads a prompt the way a model would — by its instructions — and writes what an R1-style
reasoning model trained on that protocol would write: ``<think>`` + a configurable number of thinking tokens
+ ``</think>``, then the action the prompt asks for:

* follow-up queries (``search queries`` prompts): built from the question's own terms, never repeating a
  query shown as already asked; ENOUGH only when the prompt offers it and nothing new is left;
* a follow-up answer (``Query:`` + evidence): the evidence sentence sharing most terms with the query,
  copied verbatim, with its label — or the prompt's "not found" phrase when no sentence shares a term;
* a final answer (``Reasoning/Answer/Option/Quotes`` format): the evidence sentence sharing most terms with
  the question, its label, the option chosen by :func:`choose_option`, the sentence as a verbatim quote;
* search-tag prompts (any tags the instructions name, e.g. ``<search>``/``<information>``/``<answer>``):
  ``searches`` searches from the question's terms, then an answer in the protocol's answer tag;
* multiple-choice QA prompts: the option chosen by :func:`choose_option` (``Answer: X``, or the
  ``answer_choice`` JSON when the prompt asks for it) — so a benchmark's accuracy is known exactly; a
  yes/no(/maybe) prompt without option lines ("… with yes or no or maybe") gets the chosen word.

Thinking text deliberately contains decoys ("Answer: …", numbered lines): if thinking ever leaked into
parsing, the decoys would surface. Output after a closed think block (budget forcing: ``</think>`` + cue)
skips thinking and continues after the cue. Tokens: :func:`tokenize` — a deterministic regex tokenizer
(one token = optional leading whitespace + a run of letters/digits, or one other character).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["StandinConfig", "reply", "tokenize", "count_tokens", "choose_option", "detect_stage", "question_terms"]

_TOKEN = re.compile(r"\s*[A-Za-z0-9]+|\s*[^\sA-Za-z0-9]|\s+")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("""a an and are as at be by can do does for from has have how in is it its of on or that the
    their this to was what when which who why with without should would patient patients year old man woman
    best most likely following first next step treatment management option options answer question
    mg ml min per dose""".split())
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.)]\s+(.+?)\s*$")
_EVIDENCE = re.compile(r'<evidence id="(E\d+)"[^>]*>\n?(.*?)\n?</evidence>', re.DOTALL)
_WORD_ANSWERS = re.compile(r"\bwith (yes or no(?: or maybe)?)\b")
_LABELLED = re.compile(r"^\[(E\d+)\] \(Title: [^)\n]*\) (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class StandinConfig:
    """``think_tokens``: thinking length per generation (``think_by_stage`` overrides it per stage: queries,
    followup, final, search, qa, other). ``searches``: searches before answering a search-tag prompt.
    ``oracle``: question substring -> option letter (overrides :func:`choose_option`)."""

    think_tokens: int = 48
    think_by_stage: Mapping[str, int] = field(default_factory=dict)
    searches: int = 1
    oracle: Mapping[str, str] = field(default_factory=dict)
    think_open: str = "<think>"
    think_close: str = "</think>"

    def thinking_for(self, stage: str) -> int:
        return int(self.think_by_stage.get(stage, self.think_tokens))


def tokenize(text: str) -> list[str]:
    """The stand-in's tokens; ``"".join(tokenize(t)) == t``."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(tokenize(text))


def question_terms(text: str) -> list[str]:
    """Distinct content words of ``text`` in order (lower-cased, stopwords and 1-2 letter words dropped)."""
    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        if len(w) > 2 and w not in _STOP and not w.isdigit() and w not in out:
            out.append(w)
    return out


def choose_option(options: Mapping[str, str], evidence: str, question: str = "",
                  oracle: Mapping[str, str] | None = None) -> str:
    """The stand-in's multiple-choice rule: an oracle entry whose key occurs in the question, else the option
    with the most distinct content words (not in the question) that occur in the evidence; ties: the
    earliest letter. Deterministic, so a benchmark's expected accuracy can be computed exactly."""
    for key, letter in (oracle or {}).items():
        if key and key in question and letter in options:
            return letter
    ev = set(_WORD.findall(evidence.lower()))
    q = set(question_terms(question))
    best, best_score = sorted(options)[0], -1
    for letter in sorted(options):
        score = len({t for t in question_terms(options[letter]) if t not in q} & ev)
        if score > best_score:
            best, best_score = letter, score
    return best


def detect_stage(context: str) -> str:
    """Which kind of prompt this is: search, queries, followup, final, qa or other."""
    if re.search(r"write <(\w+)>a short search query</\1>", context):
        return "search"
    if "search queries" in context:
        return "queries"
    if re.search(r"\nQuery: ", context) and "Answer the query" in context:
        return "followup"
    if "Answer the question using only the evidence" in context:
        return "final"
    if _options(context) or _WORD_ANSWERS.search(context):
        return "qa"
    return "other"


def reply(context: str, prefix: str, cfg: StandinConfig) -> str:
    """The stand-in's raw output for a prompt (``context``) whose answer so far is ``prefix`` (a continued
    assistant message or the tail of a completion prompt)."""
    stage = detect_stage(context)
    state = _think_state(prefix, cfg, _results_close(context))
    cue = ""
    if state == "closed" and cfg.think_close in prefix:
        cue = prefix[prefix.rfind(cfg.think_close) + len(cfg.think_close):].strip()
    action = _act(stage, context, prefix, cfg, answer_now=bool(cue))
    thought = _thinking(cfg.thinking_for(stage), context)
    if state == "open":
        return f"{thought}\n{cfg.think_close}\n\n{action}"
    if state == "closed":
        return action.split(cue, 1)[1] if cue and cue in action else action
    return f"{cfg.think_open}\n{thought}\n{cfg.think_close}\n\n{action}"


# ----------------------------------------------------------------------------------------------- helpers

def _think_state(prefix: str, cfg: StandinConfig, results_close: str | None) -> str:
    """fresh (think first), open (inside a think block: finish it), closed (answer directly)."""
    if not prefix.strip() or (results_close and prefix.rstrip().endswith(results_close)):
        return "fresh"  # a new turn, or new information: think (again)
    return "open" if prefix.rfind(cfg.think_open) > prefix.rfind(cfg.think_close) else "closed"


def _thinking(n: int, context: str) -> str:
    """Exactly ``n`` tokens of thinking about the question, with decoys that must never be parsed."""
    terms = question_terms(_question(context)) or ["question"]
    tokens: list[str] = []
    i = 0
    while len(tokens) < n:
        t = terms[i % len(terms)]
        tokens += tokenize(f" Hmm, {t} matters here; Answer: not yet, Option Z is a decoy.\n1. decoy thinking line {t}\n")
        i += 1
    return "".join(tokens[:n]).strip() if n > 0 else ""


def _question(context: str) -> str:
    m = re.search(r"Question: (.+)", context)
    return m.group(1).strip() if m else context[-300:]


def _options(context: str) -> dict[str, str]:
    """The last contiguous block of option lines (``A. text`` / ``(A) text``) in the prompt."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in context.splitlines():
        m = _OPTION_LINE.match(line)
        if m and (not current or ord(m.group(1)) == ord(max(current)) + 1):
            current[m.group(1)] = m.group(2)
        else:
            if len(current) >= 2:
                blocks.append(current)
            current = {m.group(1): m.group(2)} if m and m.group(1) == "A" else {}
    if len(current) >= 2:
        blocks.append(current)
    if not blocks:
        found = dict(re.findall(r'"([A-Z])":\s*"([^"]*)"', context))
        return found if len(found) >= 2 else {}
    return blocks[-1]


def _evidence(text: str) -> dict[str, str]:
    found = {lab: body for lab, body in _EVIDENCE.findall(text)}
    found.update({lab: body for lab, body in _LABELLED.findall(text) if lab not in found})
    return found


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.replace(" …", "")) if len(s.strip()) > 20]


def _best_sentence(evidence: Mapping[str, str], query: str) -> tuple[str, str, int]:
    """(label, verbatim sentence, shared terms) of the evidence sentence sharing most terms with ``query``."""
    q = set(question_terms(query))
    best = ("", "", 0)
    for label, body in evidence.items():
        for sent in _sentences(body):
            score = len(q & set(question_terms(sent)))
            if score > best[2]:
                best = (label, sent, score)
    return best


def _results_close(context: str) -> str | None:
    m = re.search(r"between <(\w+)> and </\1>", context)
    return f"</{m.group(1)}>" if m else None


def _act(stage: str, context: str, prefix: str, cfg: StandinConfig, answer_now: bool) -> str:
    if stage == "queries":
        return _queries(context)
    if stage == "followup":
        return _followup(context)
    if stage in ("final", "search"):
        return _final(context, prefix, cfg, stage, answer_now)
    if stage == "qa":
        return _qa(context, cfg)
    return "I can only follow medrag's prompts."


def _queries(context: str) -> str:
    terms = question_terms(_question(context))
    seen = {q.strip().lower() for q in re.findall(r'query="([^"]*)"', context)}
    seen |= {q.strip().lower() for q in re.findall(r"^Q\d+: (.+)$", context, re.MULTILINE)}
    m = re.search(r"Write up to (\d+)", context)
    limit = int(m.group(1)) if m else 3
    candidates = [" ".join(terms[i:i + 3]) for i in range(max(1, len(terms) - 2))]
    candidates += [f"{a} {b}" for i, a in enumerate(terms) for b in terms[i + 1:]]
    new = [c for c in dict.fromkeys(candidates) if c and c.lower() not in seen][:limit]
    if not new:
        return "ENOUGH" if "ENOUGH" in context else f"1. {' '.join(terms)} evidence"
    if context.rstrip().endswith("1."):  # a completion prompt continues its numbered list
        return " " + "\n".join(f"{i}. {q}" if i > 1 else q for i, q in enumerate(new, 1)) + "\n\n"
    return "\n".join(f"{i}. {q}" for i, q in enumerate(new, 1))


def _followup(context: str) -> str:
    query = re.findall(r"\nQuery: (.+)", context)[-1]
    label, sent, score = _best_sentence(_evidence(context), query)
    if not score:
        m = re.search(r"reply exactly: (.+)$", context, re.MULTILINE)
        return m.group(1).strip() if m else "Not found in the evidence."
    return f"{sent.rstrip('.')} [{label}]."


def _final(context: str, prefix: str, cfg: StandinConfig, stage: str, answer_now: bool) -> str:
    question = _question(context)
    answer_tag = re.search(r"final answer inside <(\w+)> \.\.\. </\1>", context)
    if stage == "search" and not answer_now:
        done = prefix.count(_results_close(context) or "\x00")
        if done < cfg.searches and "search limit reached" not in prefix:
            terms = question_terms(question)
            query = " ".join(terms[:5] if done == 0 else terms[done * 2: done * 2 + 5] or terms[:3])
            tag = re.search(r"write <(\w+)>a short search query", context)
            return f"<{tag.group(1) if tag else 'search'}>{query}</{tag.group(1) if tag else 'search'}>"
    evidence = _evidence(context + "\n" + prefix)
    label, sent, score = _best_sentence(evidence, question)
    options = _options(context.split("Question:")[-1]) if "Question:" in context else {}
    if not score:
        body = "Answer: Insufficient evidence."
    else:
        body = (f"Reasoning: Passage {label} speaks to this question [{label}].\n"
                f"Answer: {sent.rstrip('.')} [{label}].\n")
        if options:
            body += f"Option: {choose_option(options, ' '.join(evidence.values()), question, cfg.oracle)}\n"
        body += f"Quotes:\n[{label}] \"{sent}\""
    if answer_tag:
        return f"<{answer_tag.group(1)}>\n{body}\n</{answer_tag.group(1)}>"
    return body


def _qa(context: str, cfg: StandinConfig) -> str:
    options = _options(context)
    lines = [ln for ln in context.splitlines() if not _OPTION_LINE.match(ln)]
    question = _question(context)
    words = _WORD_ANSWERS.search(context)
    if not options and words:  # yes/no(/maybe) items list no options: answer with the word
        options = {chr(ord("A") + i): w for i, w in enumerate(words.group(1).split(" or "))}
        return f"Answer: {options[choose_option(options, context, question, cfg.oracle)]}"
    letter = choose_option(options, "\n".join(lines).replace(question, " "), question, cfg.oracle)
    if "answer_choice" in context:
        return json.dumps({"step_by_step_thinking": "The documents favour this option.", "answer_choice": letter})
    return f"Answer: {letter}"


def split_prompt(prompt: str, messages: Sequence[Mapping[str, str]] | None) -> tuple[str, str]:
    """(context, prefix) of a request: for chat, the messages before a trailing assistant message and that
    message; for a completion prompt, the text up to the end of its question block and the rest."""
    if messages is not None:
        msgs = list(messages)
        prefix = msgs.pop()["content"] if msgs and msgs[-1]["role"] == "assistant" else ""
        return "\n".join(f"<|{m['role']}|>\n{m['content']}" for m in msgs), prefix
    pos = prompt.rfind("\nQuestion:")
    if pos < 0:
        return prompt, ""
    end = prompt.find("\n", pos + 1)
    while end >= 0:
        nxt = prompt.find("\n", end + 1)
        line = prompt[end + 1: nxt if nxt >= 0 else None]
        if not (line.startswith("Options:") or _OPTION_LINE.match(line)):
            break
        end = nxt
    if end < 0:
        return prompt, ""
    return prompt[: end + 1], prompt[end + 1:]
