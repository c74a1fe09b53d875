"""The HTTP layer around the routes: structured JSON errors and request guards (API key, body size, JSON
content type).

Every error leaves the server as ``{"error": {"code": "...", "message": "..."}}`` with its status code; no
stack trace ever reaches a client (unexpected exceptions are logged with their traceback and answered with a
generic 500).
"""

# no ``from __future__ import annotations``: FastAPI reads handler annotations at runtime

import hmac
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BackendUnavailableError, ConfigError, InputError, LLMError, MedragError, QueryError
from .schemas import ErrorResponse
from .service import CancelledError, ServiceBusyError

__all__ = ["ApiError", "ApiKeyGuard", "BodyLimitGuard", "JsonBody", "install_error_handlers", "error_response", "describe_error",
           "ERROR_RESPONSES", "OPEN_PATHS"]

log = logging.getLogger("medrag.integrations.server")

#: reachable without an API key: liveness probe and the API description
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
          500: "internal_error", 503: "unavailable", 504: "timeout"}

#: documented error responses of every route
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc} for code, desc in (
        (400, "Invalid request (bad JSON, blank query, unknown filter, unavailable mode)"),
        (401, "Missing or wrong API key"),
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
    if isinstance(exc, (BackendUnavailableError, LLMError, CancelledError)):
        return 503, _CODES[503], str(exc)
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
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return error_response(422, f"{where}: {first.get('msg', 'invalid value')}{more}")

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
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS or self._authorized(scope):
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


class BodyLimitGuard:
    """ASGI middleware: a body declared (Content-Length) or found (while streaming in) to exceed
    ``max_bytes`` is refused with a JSON 413 before anything parses it.

    (FastAPI's own ``max_body_size`` answers in plain text, so the service does not use it.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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

        async def limited() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
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
