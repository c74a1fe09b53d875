"""Model profiles: how to talk to one model, stated as data — never guessed from the model's name.

Named profiles ship as JSON files under ``medrag/data/profiles/`` (copy one, edit it, pass the path with
``--profile my.json``). A profile says: prompt style and where the chat template comes from, the think tags
and whether the template opens the think block itself, per-stage thinking and answer token budgets, sampling
defaults, the context length to serve the model with, extra stop strings, whether its clinical answers may be
shown, and which search-tag protocol it was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ._base import _check

__all__ = [
    "PROMPT_STYLES",
    "TEMPLATE_SOURCES",
    "STAGES",
    "StageBudget",
    "StageBudgets",
    "SearchProtocol",
    "SEARCH_PROTOCOLS",
    "ModelProfile",
    "MODEL_PROFILES",
    "load_profile_file",
]

#: prompt styles a model profile may declare
PROMPT_STYLES = ("completion", "chat")
#: where a chat template comes from: the model's own (tokenizer / GGUF / server), the profile's
#: ``chat_template``, or none (completion prompts only)
TEMPLATE_SOURCES = ("model", "profile", "none")
#: generation stages with their own budgets: follow-up queries, follow-up answers, the final answer, one
#: search-tag step, QA evaluation answers, MedRGB answers, query expansion passages
STAGES = ("queries", "followup", "final", "search", "qa", "medrgb", "expansion")


def _strict(cls: Any, d: Any, what: str) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{what} must be a JSON object, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    _check(not unknown, f"unknown {what} key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dict(d)


@dataclass(frozen=True)
class StageBudget:
    """Tokens one generation may spend: ``thinking`` inside the think block (0: the model does not think
    aloud) and ``answer`` after it. A generation gets ``thinking + answer`` tokens; when it ends inside the
    think block, the block is closed and the answer gets one continuation of ``answer`` tokens."""

    thinking: int = 0
    answer: int = 128

    def __post_init__(self) -> None:
        _check(self.thinking >= 0, f"thinking budget must be >= 0, got {self.thinking}")
        _check(self.answer >= 1, f"answer budget must be >= 1, got {self.answer}")

    @property
    def total(self) -> int:
        return self.thinking + self.answer


@dataclass(frozen=True)
class StageBudgets:
    """One :class:`StageBudget` per stage (see ``STAGES``)."""

    queries: StageBudget = StageBudget(0, 96)
    followup: StageBudget = StageBudget(0, 128)
    final: StageBudget = StageBudget(0, 1536)
    search: StageBudget = StageBudget(0, 1536)
    qa: StageBudget = StageBudget(0, 3)
    medrgb: StageBudget = StageBudget(0, 512)
    expansion: StageBudget = StageBudget(0, 128)

    def of(self, stage: str) -> StageBudget:
        _check(stage in STAGES, f"unknown budget stage {stage!r}; stages: {', '.join(STAGES)}")
        return getattr(self, stage)  # type: ignore[no-any-return]

    def with_overrides(self, thinking: Mapping[str, int] | None = None,
                       answer: Mapping[str, int] | None = None) -> StageBudgets:
        """These budgets with some stages' thinking/answer tokens replaced (stage ``"*"``: every stage)."""
        new: dict[str, StageBudget] = {}
        for kind, given in (("thinking", thinking or {}), ("answer", answer or {})):
            for stage, n in given.items():
                targets = STAGES if stage == "*" else (stage,)
                for s in targets:
                    new[s] = replace(new.get(s, self.of(s)), **{kind: int(n)})
        return replace(self, **new) if new else self

    @classmethod
    def from_dict(cls, d: Any) -> StageBudgets:
        raw = _strict(cls, d, "budgets")
        return cls(**{k: StageBudget(**_strict(StageBudget, v, f"budgets.{k}")) for k, v in raw.items()})


@dataclass(frozen=True)
class SearchProtocol:
    """The tags and prompt shape of a search-tag loop (what the model was trained on).

    The model writes ``search_open query search_close``; generation stops there and the retrieved passages
    are inserted inside ``results_open … results_close`` (as ``<evidence id="E1">`` blocks when
    ``doc_format`` is ``evidence``, or as ``[E1] (Title: …) text`` lines when ``labelled``). The answer comes
    inside ``answer_open … answer_close`` (None: ``Answer:`` lines). ``prompt``: ``system`` (rules in a system
    message, the question as the user turn) or ``instruction`` (one user turn holding rules and question, as
    Search-R1 trains). ``prefill_think``: the assistant turn starts with the profile's ``think_open``.
    """

    name: str = "medrag"
    search_open: str = "<search>"
    search_close: str = "</search>"
    results_open: str = "<results>"
    results_close: str = "</results>"
    answer_open: str | None = None
    answer_close: str | None = None
    prompt: Literal["system", "instruction"] = "system"
    prefill_think: bool = False
    doc_format: Literal["evidence", "labelled"] = "evidence"

    def __post_init__(self) -> None:
        for name in ("search_open", "search_close", "results_open", "results_close"):
            _check(bool(getattr(self, name)), f"search protocol {name} must be non-empty")
        _check((self.answer_open is None) == (self.answer_close is None),
               "answer_open and answer_close must both be set or both be None")
        _check(self.prompt in ("system", "instruction"), f"prompt must be system or instruction, got {self.prompt!r}")
        _check(self.doc_format in ("evidence", "labelled"),
               f"doc_format must be evidence or labelled, got {self.doc_format!r}")


#: search-tag protocol presets (a profile names one, or gives its own object)
SEARCH_PROTOCOLS: dict[str, SearchProtocol] = {
    "medrag": SearchProtocol(),
    "search-r1": SearchProtocol(
        name="search-r1", results_open="<information>", results_close="</information>",
        answer_open="<answer>", answer_close="</answer>", prompt="instruction", prefill_think=True,
        doc_format="labelled"),
    "med-r3": SearchProtocol(
        name="med-r3", results_open="<documents>", results_close="</documents>", answer_open="<answer>",
        answer_close="</answer>", prompt="system", prefill_think=True, doc_format="labelled"),
}


@dataclass(frozen=True)
class ModelProfile:
    """How to talk to one model (see the module docstring and docs/llm.md for every field).

    ``prompt_style``: ``completion`` (a base model: few-shot completion prompts) or ``chat``.
    ``template_source``/``chat_template``: the model's own chat template, or the Jinja ``chat_template`` given
    here. ``think_open``/``think_close``: the thinking tags (None: no visible thinking); ``think_prefill``:
    the chat template itself opens the think block, so output may start inside it. ``budgets``: per-stage
    thinking/answer tokens. ``temperature``/``top_p``: sampling defaults. ``max_model_len``: the context
    length to serve the model with. ``stop``: extra stop strings. ``clinical_answers``: whether this model's
    answers may be shown (False: ``ask`` shows the cited evidence instead). ``system_role``: whether the
    template accepts a system message. ``search_protocol``: a preset name or a :class:`SearchProtocol`.
    """

    name: str = "custom"
    description: str = ""
    hub_id: str = ""
    prompt_style: str = "chat"
    template_source: str = "model"
    chat_template: str | None = None
    think_open: str | None = "<think>"
    think_close: str | None = "</think>"
    think_prefill: bool = False
    budgets: StageBudgets = field(default_factory=StageBudgets)
    temperature: float = 0.0
    top_p: float = 1.0
    max_model_len: int | None = None
    stop: tuple[str, ...] = ()
    clinical_answers: bool = True
    system_role: bool = True
    search_protocol: str | SearchProtocol = "medrag"

    def __post_init__(self) -> None:
        _check(self.prompt_style in PROMPT_STYLES,
               f"prompt_style must be one of {', '.join(PROMPT_STYLES)}, got {self.prompt_style!r}")
        if self.chat_template and self.template_source == "model":
            object.__setattr__(self, "template_source", "profile")
        _check(self.template_source in TEMPLATE_SOURCES,
               f"template_source must be one of {', '.join(TEMPLATE_SOURCES)}, got {self.template_source!r}")
        _check(self.template_source != "profile" or bool(self.chat_template),
               "template_source 'profile' needs a chat_template")
        _check((self.think_open is None) == (self.think_close is None),
               "think_open and think_close must both be set or both be None")
        _check(all(isinstance(s, str) and s for s in self.stop), "stop strings must be non-empty strings")
        _check(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        _check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        _check(self.max_model_len is None or self.max_model_len >= 256, "max_model_len must be >= 256")
        _check(isinstance(self.search_protocol, SearchProtocol) or self.search_protocol in SEARCH_PROTOCOLS,
               f"unknown search_protocol {self.search_protocol!r}; presets: {', '.join(SEARCH_PROTOCOLS)} "
               "(or give an object with SearchProtocol fields)")

    @property
    def thinks(self) -> bool:
        return self.think_open is not None

    @property
    def protocol(self) -> SearchProtocol:
        sp = self.search_protocol
        return sp if isinstance(sp, SearchProtocol) else SEARCH_PROTOCOLS[sp]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelProfile:
        kw = _strict(cls, d, "model profile")
        if "stop" in kw:
            kw["stop"] = tuple(kw["stop"])
        if "budgets" in kw:
            kw["budgets"] = StageBudgets.from_dict(kw["budgets"])
        if isinstance(kw.get("search_protocol"), Mapping):
            kw["search_protocol"] = SearchProtocol(**_strict(SearchProtocol, kw["search_protocol"], "search_protocol"))
        try:
            return cls(**kw)
        except TypeError as exc:  # a value of the wrong JSON type
            raise ConfigError(f"bad model profile: {exc}") from None


def load_profile_file(path: str | Path) -> ModelProfile:
    """A profile from a JSON file (its ``name`` defaults to the file's stem); ConfigError when unusable."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read model profile {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"model profile {path} must hold a JSON object")
    data.setdefault("name", path.stem)
    try:
        return ModelProfile.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"model profile {path}: {exc}") from None


class _PackagedProfiles(Mapping[str, ModelProfile]):
    """The profiles shipped in ``medrag/data/profiles/*.json``, read on first use."""

    def __init__(self) -> None:
        self._profiles: dict[str, ModelProfile] | None = None

    def _load(self) -> dict[str, ModelProfile]:
        if self._profiles is None:
            folder = resources.files("medrag").joinpath("data").joinpath("profiles")
            loaded = {}
            for entry in sorted(folder.iterdir(), key=lambda e: e.name):
                if entry.name.endswith(".json"):
                    data = json.loads(entry.read_text(encoding="utf-8"))
                    data.setdefault("name", entry.name[: -len(".json")])
                    loaded[data["name"]] = ModelProfile.from_dict(data)
            self._profiles = loaded
        return self._profiles

    def __getitem__(self, name: str) -> ModelProfile:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


#: Named profiles (``--profile NAME``), loaded from the packaged JSON files. ``tiny-base`` is what the packaged
#: offline default gets because it is the default; a model you name with ``--llm`` gets ``reasoning`` unless
#: you say otherwise.
MODEL_PROFILES: Mapping[str, ModelProfile] = _PackagedProfiles()
