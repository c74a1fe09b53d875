#!/usr/bin/env bash
# One command, fresh machine, offline: install, build the embedded default index, ask a question.
# Nothing compiles: the packaged Gemma 3 270M GGUF runs on transformers + torch (wheels). Progress and the
# time of each step go to stderr; the last line sums them up with the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
# Let Python cache the bytecode of .venv's packages: with PYTHONDONTWRITEBYTECODE set (some images and CI
# runners set it), every step recompiles torch/transformers from source (~11 CPU-s per process).
unset PYTHONDONTWRITEBYTECODE
step() { printf '[quickstart %4ss] %s\n' "$SECONDS" "$*" >&2; }
QUESTION="${1:-Which anticoagulant is recommended for stroke prevention in atrial fibrillation?}"
load0="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
scripts/setup.sh default
t_install=$SECONDS
# shellcheck disable=SC1091
. .venv/bin/activate
export TOKENIZERS_PARALLELISM=false
step "building the default index"
medrag index build                     # embedded guideline corpus -> corpora/guidelines -> indexes/default
t_index=$SECONDS
step "asking (follow-up loop, ${MEDRAG_QUICKSTART_ROUNDS:-1} round, packaged Gemma 3 270M)"
medrag ask --rounds "${MEDRAG_QUICKSTART_ROUNDS:-1}" "$QUESTION"
t_ask=$SECONDS
step "done: install ${t_install}s + index $((t_index - t_install))s + question $((t_ask - t_index))s = ${t_ask}s;" \
  "load average before ${load0}, after $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
