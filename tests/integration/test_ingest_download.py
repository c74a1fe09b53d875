"""Downloads against a real HTTP server on 127.0.0.1 serving fixture files (no external network)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from medrag.cli import cli
from medrag.errors import ConfigError, DownloadError
from medrag.ingest.download import download_hub_corpus, download_pubmed, parse_file_spec
from medrag.ingest.synthetic import write_medline


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        if self.path in srv.listings:
            return self._send(200, srv.listings[self.path].encode(), "text/html")
        data = srv.files.get(self.path)
        if data is None:
            return self._send(404, b"not found")
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            if start >= len(data):
                return self._send(416, b"")
        if self.path in srv.flaky and not match:
            srv.flaky.discard(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return None
        if match:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    def _send(self, code, body, ctype="application/octet-stream"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.listings, srv.flaky, srv.requests = {}, {}, set(), []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _publish(srv, folder, name, data, md5=None):
    srv.files[f"/pubmed/{folder}/{name}"] = data
    srv.files[f"/pubmed/{folder}/{name}.md5"] = f"MD5({name})= {md5 or hashlib.md5(data).hexdigest()}\n".encode()
    listing = srv.listings.setdefault(f"/pubmed/{folder}/", "<html><body>\n")
    srv.listings[f"/pubmed/{folder}/"] = listing + f'<a href="{name}">{name}</a> <a href="{name}.md5">md5</a>\n'


@pytest.fixture
def pubmed_site(server, tmp_path):
    blobs = {}
    for i in (1, 2, 3):
        path = write_medline(tmp_path / f"src{i}.xml.gz", 40, first_pmid=i * 100, seed=i)
        blobs[i] = path.read_bytes()
        _publish(server, "baseline", f"pubmed25n{i:04d}.xml.gz", blobs[i])
    _publish(server, "baseline", "pubmed24n0001.xml.gz", b"old year")
    update = write_medline(tmp_path / "u.xml.gz", 5, first_pmid=100, seed=9, deletes=(101,)).read_bytes()
    _publish(server, "updatefiles", "pubmed25n0004.xml.gz", update)
    server.blobs = blobs
    return server


def test_file_spec():
    assert parse_file_spec("1-3,7") == {1, 2, 3, 7}
    assert parse_file_spec("all") is None and parse_file_spec(None) is None
    for bad in ("3-1", "a", "1-"):
        with pytest.raises(ConfigError):
            parse_file_spec(bad)


def test_download_resumes_interrupted_transfer_and_verifies_md5(pubmed_site, tmp_path):
    pubmed_site.flaky.add("/pubmed/baseline/pubmed25n0002.xml.gz")
    paths = download_pubmed(tmp_path / "raw", "1-2", base_url=pubmed_site.url + "/pubmed/", progress=False)
    assert [p.name for p in paths] == ["pubmed25n0001.xml.gz", "pubmed25n0002.xml.gz"]  # newest prefix chosen
    assert paths[1].read_bytes() == pubmed_site.blobs[2]
    ranges = [r for p, r in pubmed_site.requests if p == "/pubmed/baseline/pubmed25n0002.xml.gz"]
    assert ranges[0] is None and ranges[1] == f"bytes={len(pubmed_site.blobs[2]) // 2}-"  # resumed, not restarted
    assert not list((tmp_path / "raw").glob("*.part"))
    # a second run verifies the md5 and fetches nothing
    pubmed_site.requests.clear()
    download_pubmed(tmp_path / "raw", "1-2", base_url=pubmed_site.url + "/pubmed/", progress=False)
    assert not [p for p, _ in pubmed_site.requests if p.endswith(".gz")]


def test_bad_md5_is_an_error_and_leaves_no_file(server, tmp_path):
    _publish(server, "baseline", "pubmed25n0001.xml.gz", b"payload", md5="0" * 32)
    with pytest.raises(DownloadError, match="md5"):
        download_pubmed(tmp_path / "raw", "1", base_url=server.url + "/pubmed/", retries=1, progress=False)
    assert not list((tmp_path / "raw").iterdir())


def test_missing_file_number_and_http_error(pubmed_site, tmp_path):
    with pytest.raises(DownloadError, match="no pubmed25nNNNN file numbered 9"):
        download_pubmed(tmp_path / "raw", "9", base_url=pubmed_site.url + "/pubmed/", progress=False)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_pubmed(tmp_path / "raw", "1", base_url=pubmed_site.url + "/elsewhere/", progress=False)


def test_cli_download_with_updates_then_ingest(pubmed_site, tmp_path):
    raw = tmp_path / "raw"
    runner = CliRunner()
    result = runner.invoke(cli, ["corpus", "download", "pubmed", "--out", str(raw), "--files", "1-3", "--updates",
                                 "--base-url", pubmed_site.url + "/pubmed/", "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in raw.iterdir()) == [f"pubmed25n000{i}.xml.gz" for i in (1, 2, 3, 4)]
    assert f"medrag corpus ingest pubmed -i {raw}" in result.output
    result = runner.invoke(cli, ["corpus", "ingest", "pubmed", "-i", str(raw), "--out", str(tmp_path / "c"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"deleted": 1' in result.output or '"deleted": 0' in result.output  # PMID 101 may lack an abstract
    assert '"replaced"' in result.output


def test_hub_download_offline_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(cli, ["corpus", "download", "textbooks", "--out", str(tmp_path / "tb")])
    assert result.exit_code != 0
    assert result.output.startswith("Error: cannot download MedRAG/textbooks from the Hugging Face hub")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    with pytest.raises(DownloadError, match="hub"):
        download_hub_corpus("textbooks", tmp_path / "tb2")


def test_statpearls_archive_from_ncbi_url(server, fixtures_dir, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(fixtures_dir / "ingest/pmc/statpearls.nxml", arcname="statpearls_NBK430685/article-99999.nxml")
    server.files["/litarch/statpearls_NBK430685.tar.gz"] = buf.getvalue()
    runner = CliRunner()
    result = runner.invoke(cli, ["corpus", "download", "statpearls", "--from", "ncbi", "--out", str(tmp_path / "sp"),
                                 "--base-url", server.url + "/litarch/statpearls_NBK430685.tar.gz", "-q"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "sp" / "statpearls_NBK430685"
    result = runner.invoke(cli, ["corpus", "ingest", "pmc", "-i", str(folder), "--out", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 0, result.output
    assert "pmc: 1 documents" in result.output


def _statpearls_tar(fixtures_dir, text=b""):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(fixtures_dir / "ingest/pmc/statpearls.nxml", arcname="statpearls_NBK430685/article-99999.nxml")
        if text:
            info = tarfile.TarInfo("statpearls_NBK430685/extra.txt")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    return buf.getvalue()


def test_archive_checksum_recorded_on_first_download_and_checked_after(server, fixtures_dir, tmp_path):
    from medrag.ingest.download import download_statpearls_archive

    good = _statpearls_tar(fixtures_dir)
    server.files["/sp.tar.gz"] = good
    out = tmp_path / "sp"
    download_statpearls_archive(out, url=server.url + "/sp.tar.gz", progress=False)
    record = json.loads((out / "sp.tar.gz.checksum.json").read_text())
    assert record["size"] == len(good) and record["sha256"] == hashlib.sha256(good).hexdigest()
    # the local archive is damaged (same size): the next run notices and downloads it again
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    (out / "sp.tar.gz").write_bytes(bytes(damaged))
    download_statpearls_archive(out, url=server.url + "/sp.tar.gz", progress=False)
    assert (out / "sp.tar.gz").read_bytes() == good
    # the server now sends other bytes: refused, nothing replaced
    (out / "sp.tar.gz").unlink()
    server.files["/sp.tar.gz"] = _statpearls_tar(fixtures_dir, b"tampered")
    with pytest.raises(DownloadError, match="sha256 does not match"):
        download_statpearls_archive(out, url=server.url + "/sp.tar.gz", retries=1, progress=False)
    assert not (out / "sp.tar.gz").exists() and not list(out.glob("*.part"))


def test_archive_pinned_sha256(server, fixtures_dir, tmp_path):
    data = _statpearls_tar(fixtures_dir)
    server.files["/sp.tar.gz"] = data
    runner = CliRunner()
    args = ["corpus", "download", "statpearls", "--from", "ncbi", "--base-url", server.url + "/sp.tar.gz",
            "--retries", "1", "-q"]
    bad = runner.invoke(cli, [*args, "--out", str(tmp_path / "a"), "--sha256", "0" * 64])
    assert bad.exit_code != 0 and bad.output.startswith("Error: ") and "sha256" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    ok = runner.invoke(cli, [*args, "--out", str(tmp_path / "b"), "--sha256", hashlib.sha256(data).hexdigest()])
    assert ok.exit_code == 0, ok.output


def test_hub_files_checked_against_first_download(tmp_path):
    out = tmp_path / "tb"

    def snapshot(repo_id, repo_type, local_dir, allow_patterns):
        (out / "chunk").mkdir(parents=True, exist_ok=True)
        if not (out / "chunk" / "a.jsonl").exists():
            (out / "chunk" / "a.jsonl").write_text('{"id": "a", "content": "x"}\n')

    files = download_hub_corpus("textbooks", out, snapshot=snapshot)
    assert json.loads((out / "checksums.json").read_text())["chunk/a.jsonl"]["size"] == len(files[0].read_bytes())
    download_hub_corpus("textbooks", out, snapshot=snapshot)  # unchanged: fine
    (out / "chunk" / "a.jsonl").write_text('{"id": "a", "content": "y"}\n')
    with pytest.raises(DownloadError, match="differs from the size/sha256 recorded"):
        download_hub_corpus("textbooks", out, snapshot=snapshot)
