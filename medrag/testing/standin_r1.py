"""An R1-style STAND-IN for an 8B medical reasoning model served by vLLM — rules on the wire, not a model.

No 8B weights or GPU are reachable where medrag's tests run, so this server behaves like ``vllm serve
zou-lab/BioMed-R1-8B --reasoning-parser deepseek_r1`` *on the wire*, with :mod:`medrag.testing.standin_rules`
deciding what to write:

* OpenAI-compatible ``GET /v1/models``, ``POST /v1/chat/completions`` and ``POST /v1/completions``, plain and
  streaming (server-sent events; ``stream_options.include_usage`` honoured);
* chat replies split like vLLM's ``deepseek_r1`` reasoning parser: text up to ``</think>`` in
  ``reasoning_content`` (a leading ``<think>`` dropped), the rest in ``content``; an output without
  ``</think>`` is all reasoning (``content: null``) — including, as with that parser, a continuation written
  after a closed think block. ``/v1/completions`` returns raw text;
* ``continue_final_message`` continues a trailing assistant message; ``stop`` strings end the output
  (excluded); ``max_tokens`` is honoured with ``finish_reason: "length"``;
* ``usage`` counts real tokens of the rendered prompt and the output with the stand-in's deterministic
  regex tokenizer (:func:`~medrag.testing.standin_rules.tokenize`); chat messages are rendered as
  ``<|role|>\\ncontent`` blocks. Sampling parameters are accepted and ignored (the rules are deterministic).

Every request is recorded in :attr:`StandinServer.requests` (stage, endpoint, tokens, finish reason) so
tests and ``eval/bench_ask.py`` can count calls and tokens.

    with StandinServer(StandinConfig(think_tokens=300)) as server:
        medrag.ask("...", llm=f"openai:{server.url}#stand-in", profile="biomed-r1-8b")
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .standin_rules import StandinConfig, count_tokens, detect_stage, reply, split_prompt, tokenize

__all__ = ["StandinServer", "StandinConfig", "RequestRecord", "MODEL_NAME"]

log = logging.getLogger(__name__)

MODEL_NAME = "stand-in"


@dataclass(frozen=True)
class RequestRecord:
    """One generation request the stand-in answered."""

    endpoint: str
    stage: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    stream: bool


def _limit(raw: str, stops: list[str], max_tokens: int) -> tuple[str, str]:
    """(output, finish_reason): cut at the earliest stop string, else at ``max_tokens`` tokens."""
    cuts = [i for i in (raw.find(s) for s in stops) if i >= 0]
    if cuts:
        text = raw[: min(cuts)]
        if count_tokens(text) <= max_tokens:
            return text, "stop"
    toks = tokenize(raw)
    if len(toks) > max_tokens:
        return "".join(toks[:max_tokens]), "length"
    return raw, "stop"


def _split_reasoning(text: str, open_tag: str, close_tag: str) -> tuple[str, str | None]:
    """(reasoning_content, content) as vLLM's deepseek_r1 reasoning parser splits a chat output."""
    body = text.lstrip()
    if body.startswith(open_tag):
        body = body[len(open_tag):]
    else:
        body = text
    if close_tag not in body:
        return body, None
    reasoning, _, content = body.partition(close_tag)
    return reasoning, content


class StandinServer:
    """The stand-in on ``127.0.0.1`` at an ephemeral port (``url`` = ``http://127.0.0.1:PORT/v1``).

    ``StandinServer(config=None, *, reasoning_parser=True)``; use as a context manager or ``start()`` /
    ``stop()``. ``reasoning_parser=False`` returns chat outputs with the think tags inline in ``content``."""

    def __init__(self, config: StandinConfig | None = None, *, reasoning_parser: bool = True) -> None:
        self.config = config or StandinConfig()
        self.reasoning_parser = reasoning_parser
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("stand-in server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> StandinServer:
        handler = type("StandinHandler", (_Handler,), {"server_ref": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="standin-r1", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------------------------------ generation

    def complete(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        """The pieces of one response: raw output, split reasoning/content, finish reason, token counts."""
        messages = body.get("messages") if chat else None
        if chat:
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
            cont = messages[-1].get("role") == "assistant" and bool(body.get("continue_final_message"))
            context, prefix = split_prompt("", messages if cont else [*messages, {"role": "assistant", "content": ""}])
            rendered = f"{context}\n<|assistant|>\n{prefix}"
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                raise ValueError("prompt must be a string")
            rendered = prompt
            context, prefix = split_prompt(prompt, None)
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        max_tokens = int(body.get("max_tokens") or (4096 if chat else 16))
        raw = reply(context, prefix, self.config)
        text, finish = _limit(raw, stops, max_tokens)
        reasoning: str | None = None
        content: str | None = text
        if chat and self.reasoning_parser:
            reasoning, content = _split_reasoning(text, self.config.think_open, self.config.think_close)
        record = RequestRecord("chat" if chat else "completions", detect_stage(context), count_tokens(rendered),
                               count_tokens(text), finish, bool(body.get("stream")))
        with self._lock:
            self.requests.append(record)
        return {"text": text, "reasoning": reasoning, "content": content, "finish": finish, "record": record}


class _Handler(BaseHTTPRequestHandler):
    server_ref: StandinServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("stand-in: " + format, *args)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        routes = {"/v1/chat/completions": True, "/v1/completions": False}
        path = self.path.rstrip("/")
        if path not in routes:
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            out = self.server_ref.complete(body, routes[path])
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, {"error": {"message": f"bad request: {exc}"}})
            return
        if body.get("stream"):
            self._stream(out, routes[path], bool((body.get("stream_options") or {}).get("include_usage")))
        else:
            self._json(200, _response(out, routes[path]))

    def _stream(self, out: dict[str, Any], chat: bool, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in _events(out, chat, include_usage):
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def _usage(record: RequestRecord) -> dict[str, int]:
    return {"prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
            "total_tokens": record.prompt_tokens + record.completion_tokens}


def _response(out: dict[str, Any], chat: bool) -> dict[str, Any]:
    base = {"id": f"standin-{time.time_ns()}", "created": int(time.time()), "model": MODEL_NAME,
            "usage": _usage(out["record"])}
    if not chat:
        return {**base, "object": "text_completion",
                "choices": [{"index": 0, "text": out["text"], "finish_reason": out["finish"]}]}
    message: dict[str, Any] = {"role": "assistant", "content": out["content"]}
    if out["reasoning"] is not None:
        message["reasoning_content"] = out["reasoning"]
    return {**base, "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": out["finish"]}]}


def _events(out: dict[str, Any], chat: bool, include_usage: bool) -> Iterator[dict[str, Any]]:
    """Server-sent events: one per token (reasoning deltas first), then the finish reason, then usage."""
    kind = "chat.completion.chunk" if chat else "text_completion"
    base = {"id": f"standin-{time.time_ns()}", "object": kind, "model": MODEL_NAME}
    if chat:
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
        for field_name, text in (("reasoning_content", out["reasoning"]), ("content", out["content"])):
            for tok in tokenize(text or ""):
                yield {**base, "choices": [{"index": 0, "delta": {field_name: tok}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": out["finish"]}]}
    else:
        for tok in tokenize(out["text"]):
            yield {**base, "choices": [{"index": 0, "text": tok, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "text": "", "finish_reason": out["finish"]}]}
    if include_usage:
        yield {**base, "choices": [], "usage": _usage(out["record"])}
