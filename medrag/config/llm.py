"""LLM backends, model profiles and the reasoning loops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._base import _check

#: prompt styles a model profile may declare
PROMPT_STYLES = ("completion", "chat")


@dataclass(frozen=True)
class ModelProfile:
    """How to talk to one model — stated explicitly, never guessed from the model's name.

    ``prompt_style``: ``"completion"`` (a base model: few-shot completion prompts) or ``"chat"`` (an
    instruction/reasoning model: chat messages). ``chat_template``: a Jinja chat template, or ``None`` for the
    model's own (the GGUF's ``tokenizer.chat_template``, the HF tokenizer's, or the server's chat endpoint).
    ``think_open``/``think_close``: the tags a reasoning model wraps its thinking in (``None``: it does not
    think aloud); thinking is kept in the trace and removed from answers. ``stop``: extra stop strings.
    ``clinical_answers``: whether this model may be trusted to write a clinical answer; when False, ``ask``
    shows the retrieved, cited evidence instead of the model's text. ``system_role``: whether the chat
    template accepts a ``system`` message (else it is merged into the first user message).
    """

    name: str = "custom"
    prompt_style: str = "chat"
    chat_template: str | None = None
    think_open: str | None = "<think>"
    think_close: str | None = "</think>"
    stop: tuple[str, ...] = ()
    clinical_answers: bool = True
    system_role: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        _check(self.prompt_style in PROMPT_STYLES,
               f"prompt_style must be one of {', '.join(PROMPT_STYLES)}, got {self.prompt_style!r}")
        _check((self.think_open is None) == (self.think_close is None),
               "think_open and think_close must both be set or both be None")
        _check(all(isinstance(s, str) and s for s in self.stop), "stop strings must be non-empty strings")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelProfile:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        _check(not unknown, f"unknown model profile key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        kw = dict(d)
        if "stop" in kw:
            kw["stop"] = tuple(kw["stop"])
        return cls(**kw)


#: Named profiles (``--profile NAME``). ``tiny-base`` is what the packaged offline default gets because it is
#: the default; a model you name with ``--llm`` gets ``reasoning`` unless you say otherwise.
MODEL_PROFILES: dict[str, ModelProfile] = {
    "tiny-base": ModelProfile(
        name="tiny-base", prompt_style="completion", think_open=None, think_close=None,
        stop=("\n\nQuestion:", "\n\n\n"), clinical_answers=False,
        description="A small base model (the packaged Gemma 3 270M): few-shot completion prompts only; "
                    "cannot answer clinically, so answers show the cited evidence instead.",
    ),
    "chat": ModelProfile(
        name="chat", prompt_style="chat", think_open=None, think_close=None, clinical_answers=True,
        description="An instruction-tuned chat model without visible thinking.",
    ),
    "reasoning": ModelProfile(
        name="reasoning", prompt_style="chat", clinical_answers=True,
        description="A reasoning chat model that thinks inside <think>...</think> (e.g. an 8B medical "
                    "reasoning model); thinking is kept in the trace and removed from the answer.",
    ),
    "chat-untrusted": ModelProfile(
        name="chat-untrusted", prompt_style="chat", think_open=None, think_close=None,
        clinical_answers=False,
        description="A chat model too small to trust clinically: it drives retrieval, answers show evidence.",
    ),
}

LLM_BACKENDS = ("llamacpp", "openai", "vllm")
OPENAI_ENDPOINTS = ("auto", "chat", "completions")


@dataclass(frozen=True)
class LLMConfig:
    """Backend settings (what ``medrag.llm.load_llm(spec, **overrides)`` overrides).

    llama.cpp: ``n_ctx``, ``n_threads`` (CPU threads for generation in all; None = all cores),
    ``parallel`` (model instances generating a batch concurrently, sharing the memory-mapped weights; a batch
    of w prompts gives each busy instance ``n_threads // w`` threads, a single prompt gets all ``n_threads``;
    default 1 — measured faster on an idle 2-core machine, see docs/llm.md), ``n_batch``.
    OpenAI-compatible HTTP: ``connect_timeout``/``read_timeout`` (s), ``max_retries`` with exponential
    backoff from ``backoff_base`` up to ``backoff_max`` on 429/5xx/timeouts, ``concurrency`` (requests in
    flight), ``api_key_env`` (name of the environment variable holding the key; unset = no key sent),
    ``endpoint`` (``auto`` = chat for chat profiles, completions for completion profiles).
    vLLM: ``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``, ``dtype``.
    ``seed`` applies to every backend that supports it.
    """

    n_ctx: int = 8192
    n_threads: int | None = None
    parallel: int = 1
    n_batch: int = 512
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    concurrency: int = 8
    api_key_env: str = "OPENAI_API_KEY"
    endpoint: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    dtype: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.n_ctx >= 256, f"n_ctx must be >= 256, got {self.n_ctx}")
        _check(self.n_threads is None or self.n_threads >= 1, f"n_threads must be >= 1, got {self.n_threads}")
        _check(self.parallel >= 1, f"parallel must be >= 1, got {self.parallel}")
        _check(self.n_batch >= 1, f"n_batch must be >= 1, got {self.n_batch}")
        _check(self.connect_timeout > 0 and self.read_timeout > 0, "timeouts must be > 0")
        _check(self.max_retries >= 0, f"max_retries must be >= 0, got {self.max_retries}")
        _check(0 <= self.backoff_base <= self.backoff_max, "need 0 <= backoff_base <= backoff_max")
        _check(self.concurrency >= 1, f"concurrency must be >= 1, got {self.concurrency}")
        _check(self.endpoint in OPENAI_ENDPOINTS,
               f"endpoint must be one of {', '.join(OPENAI_ENDPOINTS)}, got {self.endpoint!r}")
        _check(self.tensor_parallel_size >= 1, "tensor_parallel_size must be >= 1")
        _check(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization must be in (0, 1]")


ASK_MODES = ("followup", "rag", "search-tags")


@dataclass(frozen=True)
class LoopConfig:
    """The reasoning loops (``medrag ask``): i-MedRAG follow-up rounds, single-pass RAG, search tags.

    ``rounds`` x ``queries_per_round`` follow-up queries (i-MedRAG defaults 4 x 3); each query retrieves
    ``k`` chunks (one ``batch_search`` per round) and gets a plain-RAG answer (the round's answers in one
    batched ``generate`` call when ``concurrent``, else one call per prompt). The final prompt shows at most
    ``final_k`` evidence chunks. ``max_tokens_final`` bounds a trusted model's final answer (thinking
    included) and each search-tag step; a model that may not answer clinically gets ``max_tokens_answer``
    there (its draft is only kept in the trace). ``max_searches`` bounds the search-tag loop. ``parse_retries``: extra
    attempts when model output cannot be parsed. ``evidence_chars``: evidence text per chunk in prompts.

    Relevance test (``min_coverage``, ``max_required_terms``): a chunk is relevant to the question when it
    contains at least ``min(max_required_terms, ceil(min_coverage * n))`` (and at least one) of the question's
    ``n`` distinct content terms (stemmed, stopwords and bare numbers removed). Retrievers always return k
    hits — dense retrieval returns neighbours even for nonsense — so rank scores cannot say "nothing
    relevant"; a lexical coverage floor can. ``min_coverage=0`` disables it.
    Grounding (``support_threshold``): an answer sentence is supported when at least that fraction of its
    content terms occur in the evidence it cites (or, uncited, in all cited evidence); an answer is shown
    only when at least ``min_supported`` of its sentences are supported and it cites valid evidence.
    """

    rounds: int = 4
    queries_per_round: int = 3
    k: int = 4
    final_k: int = 8
    max_searches: int = 4
    parse_retries: int = 2
    concurrent: bool = True
    temperature: float = 0.0
    retry_temperature: float = 0.7
    max_tokens_queries: int = 96
    max_tokens_answer: int = 128
    max_tokens_final: int = 1536
    evidence_chars: int = 1200
    min_coverage: float = 0.5
    max_required_terms: int = 3
    support_threshold: float = 0.5
    min_supported: float = 0.5
    evidence_shown: int = 5

    def __post_init__(self) -> None:
        _check(self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}")
        _check(self.queries_per_round >= 1, f"queries_per_round must be >= 1, got {self.queries_per_round}")
        _check(self.k >= 1 and self.final_k >= 1, "k and final_k must be >= 1")
        _check(self.max_searches >= 0, f"max_searches must be >= 0, got {self.max_searches}")
        _check(self.parse_retries >= 0, f"parse_retries must be >= 0, got {self.parse_retries}")
        _check(self.temperature >= 0 and self.retry_temperature >= 0, "temperatures must be >= 0")
        for name in ("max_tokens_queries", "max_tokens_answer", "max_tokens_final", "evidence_chars"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1")
        for name in ("min_coverage", "support_threshold", "min_supported"):
            _check(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1]")
        _check(self.max_required_terms >= 1, "max_required_terms must be >= 1")
        _check(self.evidence_shown >= 1, "evidence_shown must be >= 1")


__all__ = ["ModelProfile", "MODEL_PROFILES", "LLMConfig", "LoopConfig", "ASK_MODES", "LLM_BACKENDS"]
