#!/usr/bin/env bash
# Validate a GPU install of medrag end to end and print a PASS / FAIL / SKIP table.
#
#   scripts/gpu_check.sh [--dense-model PATH] [--vllm-model zou-lab/BioMed-R1-8B] [--index indexes/default]
#                        [--profile biomed-r1-8b] [--only CHECK ...] [--json]
#
# Checks: cuda (torch sees a GPU), faiss-gpu (GPU search = CPU search), fp16 (fp16 encodings vs fp32, cosine),
# vllm (generation with the named model), ask (`medrag ask --llm vllm:MODEL --profile ...`). Each check SKIPs
# with its reason when its library, device, model or index is missing; exit status 1 when any check FAILS.
# No `pip install` of medrag is needed: the helper runs from the repository (PYTHONPATH=repo root), and the
# fp16 check needs only torch + sentence-transformers. PYTHON selects the interpreter (default: python3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
exec "$PY" "$ROOT/scripts/gpu_check.py" "$@"
