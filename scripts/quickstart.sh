#!/usr/bin/env bash
# One command, fresh machine, offline: install, build the embedded default index, ask a question.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh default
# shellcheck disable=SC1091
. .venv/bin/activate
medrag index build                     # embedded guideline corpus -> corpora/guidelines -> indexes/default
medrag ask "${1:-Which anticoagulant is recommended for stroke prevention in atrial fibrillation?}"
