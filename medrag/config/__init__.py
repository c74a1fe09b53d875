"""One frozen configuration per stage.

Configs are plain values: they validate in ``__post_init__`` (raising ConfigError), serialise with
``config_to_dict`` into manifests/results, and never sniff model names — pooling, prefixes, metric and chat
behaviour are stated here explicitly. Each stage's configs live in their own module; import them from here.
"""

from __future__ import annotations

from ._base import cache_root, config_to_dict, jsonable
from .adapt import AdaptConfig
from .evaluation import (
    EXPANSION_METHODS,
    QA_CONTEXTS,
    RETRIEVAL_MODES,
    MedRGBEvalConfig,
    QAEvalConfig,
    RetrievalEvalConfig,
)
from .index import (
    ENCODER_BACKENDS,
    ENCODER_PRESETS,
    INDEX_PRESETS,
    PRF_FUSION,
    QUALITY_INDEX,
    RERANK_PRESETS,
    BM25Config,
    DenseLegConfig,
    EncoderConfig,
    FaissConfig,
    FusionConfig,
    IndexConfig,
    RerankConfig,
    index_config_from_dict,
    rerank_config,
)
from .ingest import ChunkConfig, IngestConfig
from .llm import ASK_MODES, LLM_BACKENDS, LOOP_PRESETS, OPENAI_ENDPOINTS, LLMConfig, LoopConfig
from .profiles import (
    MODEL_PROFILES,
    PROMPT_STYLES,
    SEARCH_PROTOCOLS,
    STAGES,
    ModelProfile,
    SearchProtocol,
    StageBudget,
    StageBudgets,
    load_profile_file,
)
from .scale import ENGINES, ScaleConfig
from .serve import ServeConfig

__all__ = [
    "cache_root",
    "config_to_dict",
    "jsonable",
    # ingest
    "ChunkConfig", "IngestConfig",
    # llm / reason
    "ModelProfile", "MODEL_PROFILES", "LLMConfig", "LoopConfig", "ASK_MODES", "LLM_BACKENDS", "PROMPT_STYLES",
    "OPENAI_ENDPOINTS", "LOOP_PRESETS", "STAGES", "StageBudget", "StageBudgets", "SearchProtocol", "SEARCH_PROTOCOLS",
    "load_profile_file",
    # index
    "AdaptConfig", "BM25Config", "EncoderConfig", "FaissConfig", "FusionConfig", "IndexConfig", "index_config_from_dict",
    "DenseLegConfig", "RerankConfig", "ENCODER_BACKENDS", "ENCODER_PRESETS", "RERANK_PRESETS", "rerank_config", "PRF_FUSION",
    "QUALITY_INDEX", "INDEX_PRESETS",
    # scale
    "ENGINES", "ScaleConfig",
    # evaluation
    "RETRIEVAL_MODES", "EXPANSION_METHODS", "QA_CONTEXTS", "RetrievalEvalConfig", "QAEvalConfig",
    "MedRGBEvalConfig",
    # serve
    "ServeConfig",
]
