"""``medrag serve`` / ``medrag mcp`` command lines: help, one-line errors, and a real server subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from medrag.cli import cli
from medrag.integrations.cli import is_loopback


def test_help_lists_endpoints_and_tools() -> None:
    runner = CliRunner()
    serve = runner.invoke(cli, ["serve", "--help"])
    assert serve.exit_code == 0
    for text in ("/search", "/batch_search", "/ask", "/health", "--api-key-env", "--max-body-bytes", "Loopback", "--rows"):
        assert text in serve.output
    mcp = runner.invoke(cli, ["mcp", "--help"])
    assert mcp.exit_code == 0 and "stdio" in mcp.output and "search" in mcp.output


def test_unset_api_key_variable_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path), "--api-key-env", "MEDRAG_TEST_UNSET_KEY"],
                                env={"MEDRAG_TEST_UNSET_KEY": ""})
    assert result.exit_code == 2
    assert "Error: --api-key-env MEDRAG_TEST_UNSET_KEY" in result.output and "Traceback" not in result.output


def test_public_bind_without_key_warns_and_missing_index_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path / "missing"), "--host", "0.0.0.0", "--no-llm"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "Warning: binding 0.0.0.0 without an API key" in result.output
    assert "Error:" in result.output


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
                                       ("127.0.0.2", True), ("0.0.0.0", False), ("10.1.2.3", False),
                                       ("example.org", False)])
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_subprocess_end_to_end(integrations_index: Path) -> None:
    """``medrag serve`` as users run it (BM25 mode, rows held in memory, no LLM, API key from the environment)."""
    port = _free_port()
    env = {**os.environ, "MEDRAG_TEST_KEY": "s3cret", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "medrag.cli", "serve", "--index", str(integrations_index), "--mode", "bm25",
         "--rows", "memory", "--no-llm", "--port", str(port), "--api-key-env", "MEDRAG_TEST_KEY", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}  # without the key: liveness only
        health = httpx.get(f"{base}/health", headers={"X-API-Key": "s3cret"}).json()
        assert health["default_mode"] == "bm25" and health["ask"] is False and health["llm"] is None
        assert httpx.post(f"{base}/search", json={"query": "sepsis"}).status_code == 401
        hits = httpx.post(f"{base}/search", json={"query": "warfarin INR", "k": 2},
                          headers={"X-API-Key": "s3cret"}).json()["hits"]
        assert hits[0]["chunk_id"] == "textbook:pharmacology/anticoagulants#0"
        r = httpx.post(f"{base}/ask", json={"question": "warfarin?"}, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "ask_unavailable"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "medrag serving" in err and "Traceback" not in err
