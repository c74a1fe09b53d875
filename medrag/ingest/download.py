"""Downloads for users with internet: PubMed baseline/update files, MedRAG textbooks, StatPearls.

PubMed: NCBI's FTP-over-HTTPS (``https://ftp.ncbi.nlm.nih.gov/pubmed/baseline/`` and ``updatefiles/``).
File names carry the baseline year (``pubmed25n0001.xml.gz``); the prefix is discovered from the
directory listing or given (``prefix="pubmed25n"``). Every file has an ``.md5`` sidecar
(``MD5(pubmed25n0001.xml.gz)= <hex>``) that is checked before the file is renamed into place.
Transfers resume from a ``.part`` file with an HTTP ``Range`` request, retry with backoff, and show a
progress bar. A finished file whose md5 verifies is never fetched again.

Textbooks: the MedRAG chunk files (``chunk/*.jsonl``) from the Hugging Face hub dataset ``MedRAG/textbooks``.
StatPearls: ``MedRAG/statpearls`` from the hub, or (``from_="ncbi"``) NCBI's ``statpearls_NBK430685.tar.gz``
archive of JATS/BITS ``.nxml`` chapters, downloaded (resumable) and unpacked.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DependencyMissingError, DownloadError

__all__ = [
    "PUBMED_BASE_URL",
    "STATPEARLS_URL",
    "parse_file_spec",
    "download_pubmed",
    "download_file",
    "download_hub_corpus",
    "download_statpearls_archive",
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
    client: Any = None,
    retries: int = 3,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``dest``: resume from ``dest.part``, retry, verify the md5 sidecar, rename last."""
    if client is None:
        with _client(timeout) as own:
            return download_file(url, dest, md5_url=md5_url, client=own, retries=retries, progress=progress)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = _expected_md5(client, md5_url) if md5_url else None
    if dest.is_file() and (expected is None or _md5(dest) == expected):
        log.info("%s: already downloaded", dest)
        return dest
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, retries + 2):
        _transfer(client, url, part, retries=retries, progress=progress)
        if expected is None or _md5(part) == expected:
            part.replace(dest)
            return dest
        log.warning("%s: md5 mismatch (attempt %d), downloading again", dest.name, attempt)
        part.unlink(missing_ok=True)
    raise DownloadError(f"{url}: md5 does not match {md5_url} after {retries + 1} attempts")


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
            from huggingface_hub import snapshot_download as snapshot
        except ImportError as exc:
            raise DependencyMissingError("huggingface_hub", "dense", "downloads from the Hugging Face hub") from exc
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
    return files


def download_statpearls_archive(
    out: str | Path, *, url: str = STATPEARLS_URL, retries: int = 3, progress: bool = True
) -> Path:
    """NCBI's StatPearls archive downloaded (resumable) and unpacked into ``out``; returns the folder of
    ``.nxml`` files to pass to ``medrag corpus ingest pmc``."""
    out = Path(out)
    archive = download_file(url, out / url.rsplit("/", 1)[-1], retries=retries, progress=progress)
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
