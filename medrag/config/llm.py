"""LLM backends, model profiles and the reasoning loops."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ._base import _check
from .profiles import MODEL_PROFILES, PROMPT_STYLES, ModelProfile, StageBudgets

LLM_BACKENDS = ("transformers", "llamacpp", "openai", "vllm")
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
    transformers (GGUF through torch, the packaged default): ``n_ctx``, ``n_threads`` (torch CPU threads;
    None = torch's default), ``cache_dir`` (where converted GGUFs are kept; None = ``$MEDRAG_CACHE_DIR`` or
    ``~/.cache/medrag``).
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
    cache_dir: str | None = None

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
    batched ``generate`` call when ``concurrent``, else one call per prompt). ``early_stop``: the model may
    say ENOUGH to end the rounds. ``history_chars``: each follow-up answer is shown to later prompts cut to
    this many characters (None: in full). The final prompt shows at most ``final_k`` evidence chunks.
    ``max_searches`` bounds the search-tag loop. ``parse_retries``: extra attempts when model output cannot be
    parsed. ``evidence_chars``: evidence text per chunk in prompts.

    Token budgets: ``budgets`` (a :class:`~medrag.config.StageBudgets`; None: the model profile's) give every
    stage a thinking and an answer budget; a generation that ends inside its think block is closed and
    continued once for the answer (budget forcing, recorded in the trace). Sampling: ``temperature``/``top_p``
    (None: the profile's); retries sample at ``retry_temperature``.

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
    early_stop: bool = True
    history_chars: int | None = 400
    max_searches: int = 4
    parse_retries: int = 2
    concurrent: bool = True
    budgets: StageBudgets | None = None
    temperature: float | None = None
    top_p: float | None = None
    retry_temperature: float = 0.7
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
        _check(self.history_chars is None or self.history_chars >= 20, "history_chars must be >= 20 or None")
        _check(self.max_searches >= 0, f"max_searches must be >= 0, got {self.max_searches}")
        _check(self.parse_retries >= 0, f"parse_retries must be >= 0, got {self.parse_retries}")
        _check((self.temperature or 0) >= 0 and self.retry_temperature >= 0, "temperatures must be >= 0")
        _check(self.top_p is None or 0 < self.top_p <= 1, "top_p must be in (0, 1]")
        _check(self.evidence_chars >= 1, "evidence_chars must be >= 1")
        for name in ("min_coverage", "support_threshold", "min_supported"):
            _check(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1]")
        _check(self.max_required_terms >= 1, "max_required_terms must be >= 1")
        _check(self.evidence_shown >= 1, "evidence_shown must be >= 1")

    def budgets_for(self, profile: ModelProfile) -> StageBudgets:
        """The budgets in force: this config's, else the profile's."""
        return self.budgets if self.budgets is not None else profile.budgets


#: Loop presets (``medrag ask --preset``): medrag's tuned defaults, and the i-MedRAG paper's settings
#: (4 rounds x 3 queries, k=32 per query, the full follow-up history, no early stop) for comparison.
LOOP_PRESETS: dict[str, LoopConfig] = {
    "medrag": LoopConfig(),
    "imedrag-paper": replace(LoopConfig(), rounds=4, queries_per_round=3, k=32, history_chars=None,
                             early_stop=False),
}


__all__ = ["ModelProfile", "MODEL_PROFILES", "PROMPT_STYLES", "LLMConfig", "LoopConfig", "LOOP_PRESETS",
           "ASK_MODES", "LLM_BACKENDS", "OPENAI_ENDPOINTS"]
