"""The HTTP service and the MCP tool server."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import _check

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """The HTTP service (``medrag serve``) and the MCP tool server (``medrag mcp``).

    Binding: ``host``/``port`` (loopback by default; binding elsewhere without an API key logs a warning).
    ``api_key_env``: name of the environment variable holding the API key (``None`` = no key required);
    clients send ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.
    Limits: request bodies over ``max_body_bytes`` are refused (413) before parsing; queries up to
    ``max_query_chars``, questions up to ``max_question_chars``; ``k`` in 1..``max_k`` (``default_k`` when
    omitted); at most ``max_batch`` queries per ``/batch_search``; at most ``max_rounds`` ask rounds and
    ``max_filter_values`` values per filter list.
    Work: searches run on one worker thread that merges concurrent requests with the same (mode, k, filters)
    into one ``batch_search`` of at most ``batch_queries`` queries; at most ``max_pending`` queries may wait
    (more: 503). ``ask_concurrency`` questions run at once (each on its own thread). A search taking longer
    than ``search_timeout`` seconds, or an ask longer than ``ask_timeout``, is answered 504.
    Browsers and clients: ``cors_origins`` lists the web origins allowed to call the API from a browser
    (empty = CORS off); a POST whose ``Origin`` header names another origin is refused (403), so a web page
    cannot drive a keyless local server. ``allowed_hosts``: ``Host`` header names accepted (``None`` =
    loopback names plus ``host``, or any name when binding a wildcard address; ``("*",)`` = any); others are
    400 (DNS rebinding). Slow clients: a request body not received within ``read_timeout`` seconds is 408;
    idle keep-alive connections close after ``keep_alive_timeout`` seconds; request heads over
    ``max_header_bytes`` are refused by the HTTP parser.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    api_key_env: str | None = None
    max_body_bytes: int = 256 * 1024
    max_query_chars: int = 2000
    max_question_chars: int = 4000
    max_k: int = 100
    default_k: int = 10
    max_batch: int = 64
    max_rounds: int = 10
    max_filter_values: int = 1000
    batch_queries: int = 64
    max_pending: int = 4096
    ask_concurrency: int = 1
    search_timeout: float = 30.0
    ask_timeout: float = 600.0
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] | None = None
    read_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_header_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        _check(bool(self.host), "host must not be empty")
        _check(0 <= self.port <= 65535, f"port must be in 0..65535, got {self.port}")
        _check(self.api_key_env is None or bool(self.api_key_env.strip()), "api_key_env must be a variable name")
        _check(self.max_body_bytes >= 1024, f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        for name in ("max_query_chars", "max_question_chars", "max_k", "max_batch", "max_rounds",
                     "max_filter_values", "batch_queries", "max_pending", "ask_concurrency"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(1 <= self.default_k <= self.max_k, f"default_k must be in 1..max_k, got {self.default_k}")
        _check(min(self.search_timeout, self.ask_timeout, self.read_timeout, self.keep_alive_timeout) > 0,
               "timeouts must be > 0")
        _check(self.max_header_bytes >= 1024, f"max_header_bytes must be >= 1024, got {self.max_header_bytes}")
        _check(all(o.startswith(("http://", "https://")) or o == "*" for o in self.cors_origins),
               f"cors_origins must be origins such as https://app.example.org, got {self.cors_origins}")

    def host_names(self) -> tuple[str, ...]:
        """The ``Host`` header names the server accepts (``("*",)`` = any)."""
        if self.allowed_hosts is not None:
            return tuple(h.lower() for h in self.allowed_hosts)
        if self.host in ("0.0.0.0", "::", "[::]", ""):
            return ("*",)
        return tuple(dict.fromkeys(("localhost", "127.0.0.1", "[::1]", self.host.lower())))
