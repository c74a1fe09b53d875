"""Passage encoding on a CUDA device: medrag's encoder (fp32 and fp16) vs plain sentence-transformers.

    python eval/bench_encode_gpu.py --model PATH --passages ../shared/data/pubmedqa/pqal_dev.json [--repeat 8]

Prints JSON: passages/s per implementation and batch size, the minimum cosine of medrag's vectors to
sentence-transformers fp32, and single-query latency. Needs torch with CUDA and sentence-transformers only
(plus medrag's light core). Results: eval/results/gpu_h200.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _passages(path: str, repeat: int) -> list[str]:
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as fh:
            texts = [json.loads(line)["text"] for line in fh]
    else:
        with open(path, encoding="utf-8") as fh:
            texts = [c for item in json.load(fh).values() for c in item["CONTEXTS"]]
    return texts * repeat


def _timed(torch: Any, fn: Callable[[], Any]) -> tuple[Any, float]:
    torch.cuda.synchronize()
    start = time.perf_counter()
    value = fn()
    torch.cuda.synchronize()
    return value, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a local sentence-transformers model folder")
    ap.add_argument("--passages", required=True, help="PubMedQA pqal json, or a jsonl of {text}")
    ap.add_argument("--repeat", type=int, default=8)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from medrag.config import EncoderConfig
    from medrag.index.encoder import load_encoder

    passages = _passages(args.passages, args.repeat)
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                           "passages": len(passages), "rows": []}
    st = SentenceTransformer(args.model, device="cuda")
    st.max_seq_length = 256
    st.encode(passages[:512], batch_size=256)
    reference = None
    for bs in (64, 256):
        reference, dt = _timed(torch, lambda bs=bs: st.encode(passages, batch_size=bs, normalize_embeddings=True,
                                                              convert_to_numpy=True))
        out["rows"].append({"impl": "sentence-transformers fp32", "batch": bs, "passages_per_s": len(passages) / dt})
    for fp16 in (False, True):
        for bs in (64, 256):
            enc = load_encoder(EncoderConfig(model=args.model, device="cuda", fp16=fp16, batch_size=bs,
                                             max_seq_length=256))
            enc.encode_passages(passages[:512])
            vectors, dt = _timed(torch, lambda enc=enc: enc.encode_passages(passages))
            out["rows"].append({"impl": f"medrag torch {'fp16' if fp16 else 'fp32'}", "batch": bs,
                                "passages_per_s": len(passages) / dt,
                                "min_cosine_vs_st_fp32": float(np.min(np.sum(vectors * reference, axis=1)))})
    enc = load_encoder(EncoderConfig(model=args.model, device="cuda", fp16=True, batch_size=64))
    queries = [t[:120] for t in passages[:200]]
    enc.encode_queries(queries[:10])
    latency = [_timed(torch, lambda q=q: enc.encode_queries([q]))[1] * 1000 for q in queries]
    out["single_query_ms_p50"] = float(np.median(latency))
    out["single_query_ms_p99"] = float(np.percentile(latency, 99))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
