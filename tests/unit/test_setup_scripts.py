"""The install scripts: the llama.cpp runtime is split from the other extras (so it can compile in the
background while they install) and a failed background build is reported, not silent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPLIT = ROOT / "scripts" / "extras_without_llm.py"

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="extras_without_llm.py needs tomllib")


def _split(extras: str, *flags: str) -> list[str]:
    out = subprocess.run([sys.executable, str(SPLIT), extras, *flags], check=True, capture_output=True, text=True)
    return out.stdout.split()


def test_default_extras_need_no_compiler():
    specs = _split("default")
    assert any(s.startswith("transformers") for s in specs) and any(s.startswith("gguf") for s in specs)
    assert not any(s.startswith("llama-cpp-python") for s in specs)


def test_other_extras_never_include_the_llama_runtime():
    specs = _split("all,test")
    assert specs and not any(s.startswith("llama-cpp-python") for s in specs)
    assert any(s.startswith("sentence-transformers") for s in specs)  # medrag[dense] expanded through [all]
    assert any(s.startswith("pytest") for s in specs)


def test_llm_only_keeps_the_runtime_with_its_own_extras():
    assert _split("all,test", "--llm-only") == ["llama-cpp-python>=0.3", "llama-cpp-python[server]>=0.3"]
    assert _split("default", "--llm-only") == []  # the default extras compile nothing
    assert _split("llamacpp", "--llm-only") == ["llama-cpp-python>=0.3"]
    assert _split("dense", "--llm-only") == []


def test_failed_background_build_is_reported(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/bin/false")  # llama_cpp is not importable
    (venv / "llama-cpp-build.log").write_text("[ 97%] Building CXX object\nerror: compiler out of memory\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (venv / "llama-cpp-build.pid").write_text(str(dead.pid))
    result = subprocess.run(["bash", "scripts/setup.sh", "--wait-llm"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={**os.environ})
    assert result.returncode == 1
    assert "wheel build failed" in result.stderr and "compiler out of memory" in result.stderr
