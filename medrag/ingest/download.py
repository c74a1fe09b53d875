"""Downloads for users with internet: PubMed baseline/update files, MedRAG textbooks, StatPearls.

PubMed: NCBI's FTP-over-HTTPS (``https://ftp.ncbi.nlm.nih.gov/pubmed/baseline/`` and ``updatefiles/``).
File names carry the baseline year (``pubmed25n0001.xml.gz``); the prefix is discovered from the
directory listing or given (``prefix="pubmed25n"``). Every file has an ``.md5`` sidecar
(``MD5(pubmed25n0001.xml.gz)= <hex>``) that is checked before the file is renamed into place.
Transfers resume from a ``.part`` file with an HTTP ``Range`` request, retry with backoff, and show a
progress bar. A finished file whose md5 verifies is never fetched again.

Files without an md5 sidecar (the StatPearls archive) are checked against a pinned sha256 when one is given
(``sha256=`` / ``--sha256``); otherwise the size and sha256 of the first complete download are recorded in
``<file>.checksum.json`` and every later run checks the file (and any re-download) against that record.
Hub files get the same first-download record (``checksums.json`` in ``out``).

Textbooks: the MedRAG chunk files (``chunk/*.jsonl``) from the Hugging Face hub dataset ``MedRAG/textbooks``.
StatPearls: ``MedRAG/statpearls`` from the hub, or (``from_="ncbi"``) NCBI's ``statpearls_NBK430685.tar.gz``
archive of JATS/BITS ``.nxml`` chapters, downloaded (resumable) and unpacked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DependencyMissingError, DownloadError
from ..manifest import atomic_write_json, sha256_file

__all__ = [
    "PUBMED_BASE_URL",
    "STATPEARLS_URL",
    "parse_file_spec",
    "download_pubmed",
    "download_file",
    "download_hub_corpus",
    "download_statpearls_archive",
    "check_recorded",
]

log = logging.getLogger(__name__)

PUBMED_BASE_URL = "https://ftp.ncbi.nlm.nih.gov/pubmed/"
STATPEARLS_URL = "https://ftp.ncbi.nlm.nih.gov/pub/litarch/3d/12/statpearls_NBK430685.tar.gz"
HUB_REPOS = {"textbooks": "MedRAG/textbooks", "statpearls": "MedRAG/statpearls"}
_LISTED = re.compile(r'href="(pubmed(\d+)n(\d{4})\.xml\.gz)"')
_MD5 = re.compile(r"\b([0-9a-fA-F]{32})\b")


def parse_file_spec(spec: str | None) -> set[int] | None:
    """``"1-3,7"`` → {1, 2, 3, 7}; ``None``/``"all"`` → None (every listed file)."""
    if spec is None or spec.strip().lower() == "all":
        return None
    numbers: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ConfigError(f"bad --files {spec!r}: use numbers and ranges like 1-3,7 (or 'all')")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise ConfigError(f"bad --files range {part!r}: {high} < {low}")
        numbers.update(range(low, high + 1))
    return numbers


def _client(timeout: float) -> Any:
    import httpx

    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 20.0)), follow_redirects=True)


def _listing(client: Any, url: str) -> list[tuple[str, str, int]]:
    """(file name, year prefix, number) of the PubMed files listed at ``url``."""
    text = _get_text(client, url)
    found = {(m.group(1), f"pubmed{m.group(2)}n", int(m.group(3))) for m in _LISTED.finditer(text)}
    return sorted(found, key=lambda f: (f[1], f[2]))


def _get_text(client: Any, url: str) -> str:
    import httpx

    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise DownloadError(f"cannot reach {url}: {exc}") from exc
    if response.status_code != 200:
        raise DownloadError(f"{url}: HTTP {response.status_code}")
    return response.text


def download_pubmed(
    out: str | Path,
    files: str | None = None,
    *,
    updates: bool = False,
    base_url: str = PUBMED_BASE_URL,
    prefix: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> list[Path]:
    """Download PubMed baseline files (``files``: ``"1-3"``, ``None`` = all) and, with ``updates``, every
    update file, into ``out``. Returns the local paths in ingest order (baseline, then updates)."""
    wanted = parse_file_spec(files)
    root = base_url.rstrip("/") + "/"
    out = Path(out)
    paths: list[Path] = []
    with _client(timeout) as client:
        for folder, selection in (("baseline/", wanted), ("updatefiles/", None)):
            if folder == "updatefiles/" and not updates:
                continue
            names = _select(client, root + folder, selection, prefix)
            for name in names:
                paths.append(
                    download_file(root + folder + name, out / name, md5_url=root + folder + name + ".md5",
                                  client=client, retries=retries, progress=progress)
                )
    return paths


def _select(client: Any, url: str, wanted: set[int] | None, prefix: str | None) -> list[str]:
    try:
        listed = _listing(client, url)
    except DownloadError:
        if prefix is None or wanted is None:
            raise
        listed = []
    if not listed:
        if prefix is None or wanted is None:
            raise DownloadError(f"{url}: no pubmedYYnNNNN.xml.gz files listed; pass --prefix (e.g. pubmed25n)")
        return [f"{prefix}{n:04d}.xml.gz" for n in sorted(wanted)]
    if prefix is None:
        prefix = listed[-1][1]  # the newest year listed
    names = [name for name, pre, number in listed if pre == prefix and (wanted is None or number in wanted)]
    missing = sorted((wanted or set()) - {n for _, pre, n in listed if pre == prefix})
    if missing:
        raise DownloadError(f"{url}: no {prefix}NNNN file numbered {', '.join(map(str, missing[:10]))}")
    return names


def _expected_md5(client: Any, md5_url: str) -> str:
    match = _MD5.search(_get_text(client, md5_url))
    if not match:
        raise DownloadError(f"{md5_url}: no md5 checksum in the sidecar file")
    return match.group(1).lower()


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url: str,
    dest: Path,
    *,
    md5_url: str | None = None,
    sha256: str | None = None,
    client: Any = None,
    retries: int = 3,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``dest``: resume from ``dest.part``, retry, verify, rename last.

    Verified against the md5 sidecar at ``md5_url`` when given; otherwise against ``sha256`` (pinned) or the
    size and sha256 recorded in ``<dest>.checksum.json`` by the first download (which writes that record).
    """
    if client is None:
        with _client(timeout) as own:
            return download_file(url, dest, md5_url=md5_url, sha256=sha256, client=own, retries=retries,
                                 progress=progress)
    dest.parent.mkdir(parents=True, exist_ok=True)
    check = _Check(client, md5_url, dest, sha256)
    if dest.is_file():
        if check.matches(dest):
            log.info("%s: already downloaded", dest)
            check.record(url, dest)
            return dest
        log.warning("%s does not match its %s: downloading again", dest, check.kind)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, retries + 2):
        _transfer(client, url, part, retries=retries, progress=progress)
        if check.matches(part):
            part.replace(dest)
            check.record(url, dest)
            return dest
        log.warning("%s: %s mismatch (attempt %d), downloading again", dest.name, check.kind, attempt)
        part.unlink(missing_ok=True)
    raise DownloadError(f"{url}: {check.kind} does not match {check.source} after {retries + 1} attempts")


class _Check:
    """How a downloaded file is verified: md5 sidecar, pinned sha256, or the first download's record."""

    def __init__(self, client: Any, md5_url: str | None, dest: Path, sha256: str | None) -> None:
        self.md5 = _expected_md5(client, md5_url) if md5_url else None
        self.record_path = dest.with_name(dest.name + ".checksum.json")
        recorded = _read_record(self.record_path) if self.md5 is None else None
        self.sha256 = sha256.lower() if sha256 else (recorded or {}).get("sha256")
        self.size = None if sha256 else (recorded or {}).get("size")
        self.kind = "md5" if self.md5 else "sha256"
        self.source = md5_url if self.md5 else "the pinned sha256" if sha256 else str(self.record_path)

    def matches(self, path: Path) -> bool:
        if self.md5 is not None:
            return _md5(path) == self.md5
        if self.size is not None and path.stat().st_size != self.size:
            return False
        return self.sha256 is None or sha256_file(path) == self.sha256  # None: first download, nothing to check

    def record(self, url: str, path: Path) -> None:
        if self.md5 is None and not self.record_path.is_file():
            atomic_write_json(self.record_path, {"url": url, "size": path.stat().st_size,
                                                 "sha256": self.sha256 or sha256_file(path)})


def _read_record(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DownloadError(f"{path}: checksum record is not valid JSON; delete it to record a new one") from exc
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        raise DownloadError(f"{path}: checksum record has no sha256; delete it to record a new one")
    return record


def _transfer(client: Any, url: str, part: Path, *, retries: int, progress: bool) -> None:
    """Bring ``part`` to the full size of ``url``, resuming with Range requests after a failure."""
    import httpx

    failures = 0
    while True:
        try:
            if _fetch_rest(client, url, part, progress=progress):
                return
        except httpx.TransportError as exc:
            failures += 1
            if failures > retries:
                raise DownloadError(f"{url}: transfer failed after {retries} retries ({exc})") from exc
            delay = min(0.5 * 2 ** (failures - 1), 30.0)
            log.warning("%s: %s; resuming in %.1fs", url, exc, delay)
            time.sleep(delay)


def _fetch_rest(client: Any, url: str, part: Path, *, progress: bool) -> bool:
    """One request for the bytes ``part`` lacks. True when the file is complete."""
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416:  # nothing left to send: the part file is complete
            return True
        if response.status_code not in (200, 206):
            raise DownloadError(f"{url}: HTTP {response.status_code}")
        if response.status_code == 200:
            offset = 0  # the server ignored Range: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
                   file=sys.stderr, disable=not progress or not sys.stderr.isatty())
        with bar, open(part, "ab" if offset else "wb") as fh:
            for block in response.iter_raw():  # undecoded, as received: a broken transfer keeps every byte
                fh.write(block)
                bar.update(len(block))
    return True


# ------------------------------------------------------------------------------------------ hub & NBK


def download_hub_corpus(
    name: str, out: str | Path, *, patterns: tuple[str, ...] = ("chunk/*.jsonl",), snapshot: Callable[..., Any] | None = None
) -> list[Path]:
    """MedRAG's ``name`` corpus (``textbooks``/``statpearls``) chunk files from the Hugging Face hub into ``out``."""
    repo = HUB_REPOS.get(name)
    if repo is None:
        raise ConfigError(f"no hub corpus {name!r}; known: {', '.join(sorted(HUB_REPOS))}")
    if snapshot is None:
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:
            raise DependencyMissingError("huggingface_hub", "dense", "downloads from the Hugging Face hub") from exc
        snapshot = snapshot_download
    out = Path(out)
    try:
        snapshot(repo_id=repo, repo_type="dataset", local_dir=str(out), allow_patterns=list(patterns))
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DownloadError(
            f"cannot download {repo} from the Hugging Face hub ({reason}); check the connection "
            "(HF_HUB_OFFLINE must be unset) or copy the files from a machine that has internet"
        ) from exc
    files = sorted(p for pattern in patterns for p in out.glob(pattern) if p.is_file())
    if not files:
        hint = "; try --from ncbi" if name == "statpearls" else ""
        raise DownloadError(f"{repo} on the hub holds no files matching {', '.join(patterns)}{hint}")
    check_recorded(out, files)
    return files


def check_recorded(out: Path, files: list[Path]) -> None:
    """Check ``files`` against the sizes and sha256 recorded in ``out/checksums.json`` by the first download
    (files new since then are added to the record); a mismatch is a DownloadError naming the file."""
    record_path = out / "checksums.json"
    recorded: dict[str, Any] = {}
    if record_path.is_file():
        try:
            recorded = json.loads(record_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DownloadError(f"{record_path}: not valid JSON; delete it to record new checksums") from exc
    changed = False
    for path in files:
        rel = path.relative_to(out).as_posix()
        entry = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        if rel not in recorded:
            recorded[rel], changed = entry, True
        elif recorded[rel] != entry:
            raise DownloadError(f"{path}: differs from the size/sha256 recorded at its first download in "
                                f"{record_path}; delete the file and download again")
    if changed:
        atomic_write_json(record_path, recorded)


def download_statpearls_archive(
    out: str | Path, *, url: str = STATPEARLS_URL, sha256: str | None = None, retries: int = 3,
    progress: bool = True,
) -> Path:
    """NCBI's StatPearls archive downloaded (resumable), verified (``sha256`` when pinned, else the record of
    the first download) and unpacked into ``out``; returns the folder of ``.nxml`` files to pass to
    ``medrag corpus ingest pmc``."""
    out = Path(out)
    archive = download_file(url, out / url.rsplit("/", 1)[-1], sha256=sha256, retries=retries, progress=progress)
    target = out / archive.name.removesuffix(".tar.gz")
    marker = target / ".unpacked"
    if marker.is_file():
        return target
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{archive}: damaged archive ({exc}); run the command again to re-download") from exc
    marker.write_text("ok\n")
    return target
