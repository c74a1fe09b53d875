#!/usr/bin/env bash
# One command, fresh machine: install everything the tests need, lint (ruff), type-check (mypy), then run the
# default (non-slow) suite.
# pytest's own exit code is returned: 5 ("no tests collected") fails like any other non-zero code.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all,test
# shellcheck disable=SC1091
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m ruff check medrag tests eval
python -m mypy                      # the type-check gate: medrag/ ([tool.mypy] in pyproject.toml)
exec python -m pytest "$@"
