"""The HTTP layer around the routes: structured JSON errors and request guards (API key, body size, JSON
content type).

Every error leaves the server as ``{"error": {"code": "...", "message": "..."}}`` with its status code; no
stack trace ever reaches a client (unexpected exceptions are logged with their traceback and answered with a
generic 500).
"""

# no ``from __future__ import annotations``: FastAPI reads handler annotations at runtime

import asyncio
import hmac
import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    BackendUnavailableError,
    ConfigError,
    ContextOverflowError,
    InputError,
    LLMError,
    MedragError,
    QueryError,
)
from .schemas import ErrorResponse, validation_message
from .service import CancelledError, ServiceBusyError

__all__ = ["ApiError", "ApiKeyGuard", "BodyLimitGuard", "JsonBody", "HostOriginGuard", "install_error_handlers",
           "error_response", "describe_error", "ERROR_RESPONSES", "OPEN_PATHS", "AUTHORIZED"]

log = logging.getLogger("medrag.integrations.server")

#: reachable without an API key: liveness probe and the API description
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

#: ``scope["state"]`` key set by ApiKeyGuard: whether the request carried the right key
AUTHORIZED = "medrag_authorized"

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          408: "request_timeout", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
          500: "internal_error", 503: "unavailable", 504: "timeout"}

#: documented error responses of every route
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc} for code, desc in (
        (400, "Invalid request (bad JSON, blank or non-UTF-8 query, unknown filter, unavailable mode, prompt over "
              "the model's context: code context_overflow)"),
        (401, "Missing or wrong API key"),
        (403, "Cross-origin request from an origin not in the server's CORS list"),
        (408, "The request body was not received within the server's read timeout"),
        (413, "Request body too large"),
        (422, "Request does not match the schema (e.g. k out of range)"),
        (500, "Internal error (details are in the server log)"),
        (503, "Busy, or no LLM loaded for /ask"),
        (504, "The request took longer than the server's timeout"),
    )
}


class ApiError(Exception):
    """An error answered with ``status`` and ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message


def error_response(status: int, message: str, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code or _CODES.get(status, "error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def describe_error(exc: BaseException) -> tuple[int, str, str]:
    """(status, code, message) for an exception raised while serving a request. Only ApiError and medrag's
    own user-facing messages are passed on; anything else is ``internal server error``."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message
    if isinstance(exc, ServiceBusyError):
        return 503, "busy", str(exc)
    if isinstance(exc, (QueryError, ConfigError, InputError)):
        return 400, _CODES[400], str(exc)
    if isinstance(exc, ContextOverflowError):
        return 400, "context_overflow", exc.public_message()
    if isinstance(exc, CancelledError):
        return 503, _CODES[503], str(exc)
    if isinstance(exc, BackendUnavailableError):  # upstream URLs and errno go to the log, not to clients
        log.error("LLM backend unavailable: %s", exc)
        return 503, _CODES[503], "the language model backend is unavailable (details are in the server log)"
    if isinstance(exc, LLMError):
        log.error("LLM backend failed: %s", exc)
        return 503, _CODES[503], "the language model backend failed (details are in the server log)"
    return 500, _CODES[500], "internal server error"


def install_error_handlers(app: FastAPI) -> None:
    """JSON error bodies for HTTP errors, validation errors, medrag errors and anything unexpected."""

    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.code)

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "request body is not valid JSON", "invalid_json")
        return error_response(422, validation_message(errors))

    async def medrag_error(request: Request, exc: MedragError) -> JSONResponse:
        status, code, message = describe_error(exc)
        if status == 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(status, message, code)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error")

    app.add_exception_handler(ApiError, api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(MedragError, medrag_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)


class ApiKeyGuard:
    """ASGI middleware: outside ``OPEN_PATHS``, a request needs ``Authorization: Bearer KEY`` or
    ``X-API-Key: KEY`` (compared in constant time); otherwise 401 — before the body is read."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorized = self._authorized(scope)
        scope.setdefault("state", {})[AUTHORIZED] = authorized  # /health shows details only to key holders
        if authorized or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        response = error_response(401, "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                                  headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        given: list[bytes] = []
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                given.append(value.strip())
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                given.append(value[7:].strip())
        return any(hmac.compare_digest(v, self.key) for v in given)


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class _BodyTimeout(StarletteHTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"request body not received within {seconds:g}s")


class BodyLimitGuard:
    """ASGI middleware: a body declared (Content-Length) or found (while streaming in) to exceed
    ``max_bytes`` is refused with a JSON 413 before anything parses it; a body that does not arrive within
    ``read_timeout`` seconds is answered 408 (a slow client cannot hold a request open).

    (FastAPI's own ``max_body_size`` answers in plain text, so the service does not use it.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await error_response(400, "invalid Content-Length header")(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await error_response(413, f"request body larger than {self.max_bytes} bytes")(scope, receive, send)
                return
        total = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        body_done = False

        async def limited() -> Message:
            nonlocal total, body_done
            if body_done:  # after the body: only a disconnect can come, wait for it as long as it takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except asyncio.TimeoutError:
                raise _BodyTimeout(self.read_timeout) from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                total += len(message.get("body", b""))
                if total > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)  # an HTTPException: FastAPI re-raises it, the handler answers
            return message

        await self.app(scope, limited, send)


class JsonBody:
    """ASGI middleware: a POST body sent without a content type, or as a form (``curl -d``), is read as JSON.

    Every body this API accepts is JSON, so ``curl -s host/search -d '{"query": "..."}'`` works as written.
    """

    _FORM = (b"application/x-www-form-urlencoded", b"text/plain")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"content-type"]
            current = dict(scope.get("headers", ())).get(b"content-type", b"")
            if not current or current.split(b";")[0].strip().lower() in self._FORM:
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


class HostOriginGuard:
    """ASGI middleware: the ``Host`` header must name an allowed host (400 otherwise: DNS rebinding), and a
    request carrying an ``Origin`` other than the server's own or one in ``cors_origins`` is refused with 403
    before its body is read — a web page cannot post (e.g. as ``text/plain``) to a keyless local server."""

    def __init__(self, app: ASGIApp, hosts: tuple[str, ...], cors_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.any_host = "*" in hosts
        self.hosts = frozenset(hosts)
        self.any_origin = "*" in cors_origins
        self.origins = frozenset(o.rstrip("/").lower() for o in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        if not self.any_host and _host_name(host) not in self.hosts:
            await error_response(400, "Host header not allowed by this server (see ServeConfig.allowed_hosts)",
                                 "invalid_host")(scope, receive, send)
            return
        origin = headers.get(b"origin")
        if origin is not None and scope.get("method") != "OPTIONS" and not self._origin_ok(origin, host):
            await error_response(403, "cross-origin request refused: this origin is not in the server's CORS "
                                      "list (ServeConfig.cors_origins)")(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _origin_ok(self, origin: bytes, host: str) -> bool:
        value = origin.decode("latin-1").strip().rstrip("/").lower()
        if self.any_origin or value in self.origins:
            return True
        return value != "null" and urlsplit(value).netloc == host  # same origin


def _host_name(host: str) -> str:
    """``name`` of a ``name[:port]`` Host header (IPv6 literals keep their brackets)."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host
