"""scripts/gpu_check.sh runs on a machine without a GPU: every check PASSes or SKIPs with a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_gpu_check_skips_cleanly_without_a_gpu(tmp_path):
    proc = _run("--json", "--vllm-model", "zou-lab/BioMed-R1-8B", "--index", str(tmp_path / "none"))
    assert proc.returncode == 0, proc.stderr
    results = {r["check"]: r for r in json.loads(proc.stdout)}
    assert list(results) == ["cuda", "faiss-gpu", "fp16", "vllm", "ask"]
    assert all(r["status"] in ("PASS", "SKIP") and r["detail"] for r in results.values())
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        assert all(r["status"] == "SKIP" for r in results.values())
        assert "no medrag index" in results["ask"]["detail"] or "CUDA" in results["ask"]["detail"]


def test_gpu_check_table_and_reasons(tmp_path):
    proc = _run("--only", "fp16", "--dense-model", str(tmp_path / "missing-model"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["check", "result", "seconds"]
    assert "fp16" in lines[1] and "SKIP" in lines[1] and "no such model folder" in lines[1]
    assert "0 failed" in proc.stdout
