"""``medrag serve`` (HTTP service) and ``medrag mcp`` (MCP tool server over stdio)."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Any, Literal

import click

from .._optional import require
from ..config import ServeConfig
from ..errors import BackendUnavailableError, ConfigError, DependencyMissingError
from ..llm import load_llm
from ..llm.spec import SPEC_HELP

__all__ = ["serve", "mcp", "is_loopback", "read_api_key"]

log = logging.getLogger(__name__)
_DEFAULTS = ServeConfig()


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_api_key(env_name: str | None) -> str | None:
    """The API key held by the environment variable ``env_name`` (None when no variable is named)."""
    if not env_name:
        return None
    key = os.environ.get(env_name, "").strip()
    if not key:
        raise ConfigError(f"--api-key-env {env_name}: the environment variable {env_name} is not set or empty")
    return key


def _load(index: Path, mode: str, device: str, llm_spec: str | None, profile: str | None, no_llm: bool,
          rows: Literal["mmap", "memory"] = "mmap") -> tuple[Any, Any]:
    from ..retrieve.load import load_index  # deferred: pyarrow (via medrag.retrieve.load)

    retriever = load_index(index, mode=mode, device=device, rows=rows)
    if no_llm:
        return retriever, None

    try:
        return retriever, load_llm(llm_spec, profile=profile)
    except (DependencyMissingError, BackendUnavailableError) as exc:
        if llm_spec is not None:
            raise
        click.secho(f"Warning: the default LLM is not available ({exc}); serving search only "
                    "(pass --llm SPEC, or --no-llm to silence this).", fg="yellow", err=True)
        return retriever, None


def _common(fn: Any) -> Any:
    options = [
        click.option("--index", "index", type=click.Path(path_type=Path), default=Path("indexes/default"),
                     show_default=True, help="Index directory (loaded once, shared by all requests)."),
        click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True,
                     help="Default search mode (requests may ask for another)."),
        click.option("--llm", "llm_spec", default=None, metavar="SPEC",
                     help=SPEC_HELP + ". Default: the offline 270M model (answers show evidence)."),
        click.option("--profile", default=None, help="Model profile (tiny-base, chat, reasoning, chat-untrusted, or .json)."),
        click.option("--no-llm", is_flag=True, help="Load no LLM: search only (ask answers 503 / is not offered)."),
        click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N] for the query encoder and FAISS."),
        click.option("--rows", type=click.Choice(["mmap", "memory"]), default="mmap", show_default=True,
                     help="Where hits are read from: the memory-mapped corpus, or every row decoded into RAM at "
                          "load (faster hits, ~1.5 GB per 1M chunks; see docs/index.md)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.command("serve")
@_common
@click.option("--host", default=_DEFAULTS.host, show_default=True,
              help="Address to bind. Loopback by default; binding elsewhere without --api-key-env is warned about.")
@click.option("--port", type=click.IntRange(0, 65535), default=_DEFAULTS.port, show_default=True)
@click.option("--api-key-env", default=None, metavar="NAME",
              help="Require the API key held by environment variable NAME (Authorization: Bearer KEY or X-API-Key).")
@click.option("--max-k", type=click.IntRange(1, 10_000), default=_DEFAULTS.max_k, show_default=True)
@click.option("--max-batch", type=click.IntRange(1, 10_000), default=_DEFAULTS.max_batch, show_default=True,
              help="Most queries per /batch_search request.")
@click.option("--max-body-bytes", type=click.IntRange(1024), default=_DEFAULTS.max_body_bytes, show_default=True,
              help="Larger request bodies are refused with 413.")
@click.option("--search-timeout", type=click.FloatRange(0.001), default=_DEFAULTS.search_timeout, show_default=True,
              help="Seconds before a search is answered 504.")
@click.option("--ask-timeout", type=click.FloatRange(0.001), default=_DEFAULTS.ask_timeout, show_default=True,
              help="Seconds before an ask is answered 504.")
@click.option("--ask-concurrency", type=click.IntRange(1, 64), default=_DEFAULTS.ask_concurrency, show_default=True,
              help="Questions answered at once.")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Web origin allowed to call the API from a browser (repeatable; default: none, CORS off; "
                   "POSTs from other origins are refused).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Host header name to accept (repeatable; default: loopback names and --host; '*' = any).")
@click.option("--read-timeout", type=click.FloatRange(0.001), default=_DEFAULTS.read_timeout, show_default=True,
              help="Seconds a client has to send its request body (then 408).")
@click.option("--keep-alive-timeout", type=click.FloatRange(0.001), default=_DEFAULTS.keep_alive_timeout,
              show_default=True, help="Seconds an idle keep-alive connection stays open.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True, help="uvicorn log level.")
def serve(index: Path, mode: str, llm_spec: str | None, profile: str | None, no_llm: bool, device: str,
          rows: Literal["mmap", "memory"], host: str,
          port: int, api_key_env: str | None, max_k: int, max_batch: int, max_body_bytes: int,
          search_timeout: float, ask_timeout: float, ask_concurrency: int, cors_origins: tuple[str, ...],
          allowed_hosts: tuple[str, ...], read_timeout: float, keep_alive_timeout: float, log_level: str) -> None:
    """Serve search and ask over HTTP (FastAPI + uvicorn).

    \b
    Endpoints: POST /search, POST /batch_search, POST /ask, POST /ask/stream (server-sent events),
    GET /health, OpenAPI at /openapi.json (docs at /docs). Errors are JSON: {"error": {"code", "message"}}.
    \b
      medrag serve --index indexes/default --port 8080
      curl -s localhost:8080/search -H 'content-type: application/json' -d '{"query": "...", "k": 5}'
      MEDRAG_API_KEY=secret medrag serve --host 0.0.0.0 --api-key-env MEDRAG_API_KEY
    """
    uvicorn = require("uvicorn", "uvicorn", "serve", "the HTTP service")
    cfg = ServeConfig(host=host, port=port, api_key_env=api_key_env, max_k=max_k, max_batch=max_batch,
                      default_k=min(_DEFAULTS.default_k, max_k), max_body_bytes=max_body_bytes,
                      search_timeout=search_timeout, ask_timeout=ask_timeout, ask_concurrency=ask_concurrency,
                      cors_origins=cors_origins, allowed_hosts=allowed_hosts or None, read_timeout=read_timeout,
                      keep_alive_timeout=keep_alive_timeout)
    api_key = read_api_key(api_key_env)
    if not is_loopback(host) and api_key is None:
        click.secho(f"Warning: binding {host} without an API key: anyone who can reach this port can query the "
                    "index. Use --api-key-env NAME (and TLS in front) for non-local access.", fg="yellow", err=True)
    from .server import create_app, uvicorn_options  # deferred: fastapi, uvicorn

    retriever, llm = _load(index, mode, device, llm_spec, profile, no_llm, rows)
    try:
        app = create_app(retriever, llm, cfg, api_key=api_key, index_label=str(index))
        click.echo(f"medrag serving {index} ({retriever.corpus.num_rows} chunks, mode {mode}; "
                   f"LLM: {llm.name if llm is not None else 'none'}) on http://{host}:{port}", err=True)
        uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(cfg))
    finally:
        if llm is not None:
            llm.close()


@click.command("mcp")
@_common
def mcp(index: Path, mode: str, llm_spec: str | None, profile: str | None, no_llm: bool, device: str,
        rows: Literal["mmap", "memory"]) -> None:
    """Run an MCP tool server over stdio with the tools `search` and `ask`.

    
    Register it with an MCP client (Claude Desktop, an agent framework …) as the command
      medrag mcp --index /path/to/indexes/default [--llm SPEC]
    `search` returns ranked chunks with citation metadata; `ask` returns a cited, evidence-checked answer
    (with the offline default model: the retrieved evidence). Logs go to stderr; stdout carries the protocol.
    """
    from .mcp_server import build_mcp_server, run_stdio  # deferred: pydantic (via .schemas)

    retriever, llm = _load(index, mode, device, llm_spec, profile, no_llm, rows)
    try:
        run_stdio(build_mcp_server(retriever, llm, ServeConfig()))
    finally:
        if llm is not None:
            llm.close()
