#!/usr/bin/env bash
# One command, fresh machine, offline: install, build the embedded default index, ask a question.
# llama-cpp-python compiles in the background (once; pip caches the wheel) while the rest installs and the
# index builds; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
MEDRAG_LLM_BACKGROUND=1 scripts/setup.sh default
# shellcheck disable=SC1091
. .venv/bin/activate
echo "[quickstart ${SECONDS}s] building the default index" >&2
medrag index build                     # embedded guideline corpus -> corpora/guidelines -> indexes/default
scripts/setup.sh --wait-llm            # the llama.cpp runtime, if its build is still running
echo "[quickstart ${SECONDS}s] asking" >&2
medrag ask "${1:-Which anticoagulant is recommended for stroke prevention in atrial fibrillation?}"
echo "[quickstart ${SECONDS}s] done" >&2
