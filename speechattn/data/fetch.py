"""Fetching corpus archives: verified, resumable downloads and safe archive extraction.

:func:`download` writes to ``<archive>.part`` (resumed with HTTP Range requests, interrupted
transfers retried) and renames it to the archive's name only once complete and verified
against its checksum (``"sha256:HEX"`` / ``"md5:HEX"``, :func:`parse_checksum`) and size; a
download that fails verification is deleted, with a one-line :class:`ChecksumError` naming the
file and both digests.

:func:`extract` unpacks a tar (any compression) or zip archive, refusing members that would be
written outside the destination (:class:`UnsafeArchiveError`).

:mod:`speechattn.data.prepare` uses both to turn a corpus's original release into its prepared
layout.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from speechattn.data.corpora import PrepareError

__all__ = [
    "ChecksumError",
    "DownloadError",
    "UnsafeArchiveError",
    "download",
    "extract",
    "file_digest",
    "file_mismatch",
    "parse_checksum",
    "sha256_file",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


class DownloadError(PrepareError):
    """A download failed (network, HTTP status, truncated transfer)."""


class ChecksumError(DownloadError):
    """A downloaded or local archive does not have the expected checksum or size, or no
    checksum is known for a download that must be verified."""


class _IncompleteDownload(DownloadError):
    """The transfer stopped early; the ``.part`` file can be resumed."""


class UnsafeArchiveError(PrepareError):
    """An archive member would be written outside the extraction folder."""


# --------------------------------------------------------------------------- download

#: Checksum algorithms accepted in ``"ALGO:HEX"`` strings, with their hex digest lengths.
_ALGORITHMS = {"sha256": 64, "md5": 32}


def parse_checksum(text: str) -> tuple[str, str]:
    """``"sha256:HEX"`` or ``"md5:HEX"`` (a bare hex digest: by its length) -> (algorithm, hex).

    Raises:
        PrepareError: anything else.
    """
    algo, sep, digest = text.strip().partition(":")
    if not sep:
        algo, digest = next((a for a, n in _ALGORITHMS.items() if len(text.strip()) == n), ""), text.strip()
    algo, digest = algo.lower(), digest.lower()
    if algo not in _ALGORITHMS or len(digest) != _ALGORITHMS[algo] or any(c not in "0123456789abcdef" for c in digest):
        raise PrepareError(f"bad checksum {text!r}: expected sha256:<64 hex digits> or md5:<32 hex digits>")
    return algo, digest


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file (``sha256`` or ``md5``)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file."""
    return file_digest(path, "sha256")


def file_mismatch(path: Path, checksum: str | None, size: int | None) -> str | None:
    """Why ``path`` is not the file of ``checksum`` (``"ALGO:HEX"``) and ``size`` (bytes), those
    given (None: it is)."""
    if size is not None:
        actual_size = path.stat().st_size
        if actual_size != size:
            return f"expected {size} bytes, got {actual_size}"
    if checksum is not None:
        algo, expected = parse_checksum(checksum)
        actual = file_digest(path, algo)
        if actual != expected:
            return f"expected {algo} {expected}, got {actual}"
    return None


def _verify(part: Path, target: Path, url: str, checksum: str | None, size: int | None) -> None:
    """Check the finished download ``part`` (to become ``target``); delete it if it is wrong."""
    problem = file_mismatch(part, checksum, size)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"checksum mismatch for {target} downloaded from {url}: {problem}; deleted the download, "
            "run again to download it anew"
        )


def _content_range_total(header: str | None) -> int | None:
    """Total size from ``Content-Range: bytes a-b/total`` (None if unknown)."""
    if not header or "/" not in header:
        return None
    total = header.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _fetch(url: str, part: Path, *, progress: bool, timeout: float, desc: str) -> None:
    """One attempt: continue ``part`` from its current size to the end of ``url``."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "speechattn-data/1", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs from the registry
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range not satisfiable: .part may already be complete
            total = _content_range_total(exc.headers.get("Content-Range"))
            exc.close()
            if total == offset:
                return
            log.warning("server refused to resume %s; starting over", url)
            part.unlink()
            return _fetch(url, part, progress=progress, timeout=timeout, desc=desc)
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None

    with response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        if offset and status == 206:
            start = response.headers.get("Content-Range", "")
            if not start.startswith(f"bytes {offset}-"):
                raise DownloadError(f"cannot resume {url}: unexpected Content-Range {start!r}")
            mode = "ab"
            total = _content_range_total(start)
        else:
            if offset:
                log.info("server ignored the range request for %s; starting over", url)
            offset = 0
            mode = "wb"
            total = int(length) if length and length.isdigit() else None
        from tqdm import tqdm

        with open(part, mode) as fh, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
            disable=not progress, leave=False,
        ) as bar:
            while True:
                block = response.read(_CHUNK)
                if not block:
                    break
                fh.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _IncompleteDownload(f"incomplete download of {url}: got {size} of {total} bytes")


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    progress: bool = True,
    *,
    checksum: str | None = None,
    size: int | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` and return its path.

    The data goes to ``<dest>.part`` first, which a later call resumes with an
    HTTP Range request (interrupted transfers are also retried ``retries``
    times); the file is renamed to ``dest`` only when complete and verified
    against ``checksum`` (``"sha256:HEX"`` or ``"md5:HEX"``; ``sha256=HEX`` is
    short for ``checksum="sha256:HEX"``) and ``size`` (bytes), those given. A
    file that fails verification is deleted and :class:`ChecksumError` raised
    (one line: the file, the URL, both digests). If ``dest`` is an existing
    folder the file is named after the URL. An existing ``dest`` is reused
    (after verification when a checksum or size is given).
    """
    if sha256 is not None:
        if checksum is not None:
            raise ValueError("give sha256 or checksum, not both")
        checksum = f"sha256:{sha256}"
    if checksum is not None:
        parse_checksum(checksum)  # a malformed value fails before any transfer
    target = Path(dest)
    if target.is_dir():
        name = PurePosixPath(urllib.parse.urlparse(url).path).name or "download"
        target = target / name
    if target.is_file():
        problem = file_mismatch(target, checksum, size)
        if problem is None:
            return target
        log.warning("%s is not the expected file (%s); downloading it again", target, problem)
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if size is not None and part.is_file() and part.stat().st_size > size:
        log.warning("%s is larger than the published size; starting over", part)
        part.unlink()

    for attempt in range(retries + 1):
        try:
            _fetch(url, part, progress=progress, timeout=timeout, desc=target.name)
            break
        except _IncompleteDownload as exc:
            if attempt == retries:
                raise
            log.warning("%s; resuming (%d/%d)", exc, attempt + 1, retries)
        except DownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError, OSError) as exc:
            if attempt == retries:
                raise DownloadError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from exc
            log.warning("download of %s interrupted (%s); resuming (%d/%d)", url, exc, attempt + 1, retries)
        time.sleep(min(2.0**attempt, 10.0) * 0.1)
    _verify(part, target, url, checksum, size)
    os.replace(part, target)
    return target


# --------------------------------------------------------------------------- extract

def _check_member_name(name: str, archive: Path) -> str:
    """Normalised member name, or :class:`UnsafeArchiveError` if it could escape."""
    clean = name.replace("\\", "/")
    while clean.startswith("./"):
        clean = clean[2:]
    pure = PurePosixPath(clean)
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or ".." in pure.parts:
        raise UnsafeArchiveError(f"{archive}: refusing to extract {name!r}: path escapes the destination")
    return clean


def extract(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    members: Callable[[str], bool] | None = None,
) -> Path:
    """Extract a tar (any compression) or zip archive into ``dest``; return ``dest``.

    Absolute paths, ``..`` components, links pointing outside ``dest`` and
    device files are refused with :class:`UnsafeArchiveError` before anything
    is written. ``members`` selects members by their (normalised) name.
    """
    src = Path(archive)
    out = Path(dest)
    if not src.is_file():
        raise PrepareError(f"{src}: no such archive")
    out.mkdir(parents=True, exist_ok=True)
    if tarfile.is_tarfile(src):
        with tarfile.open(src, "r:*") as tar:
            chosen = []
            for m in tar.getmembers():
                name = _check_member_name(m.name, src)
                if members is not None and not members(name):
                    continue
                if m.isdev():
                    raise UnsafeArchiveError(f"{src}: refusing to extract device file {m.name!r}")
                if m.issym() or m.islnk():
                    link = m.linkname.replace("\\", "/")
                    base = PurePosixPath(name).parent if m.issym() else PurePosixPath()
                    resolved = os.path.normpath((base / link).as_posix())
                    if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
                        raise UnsafeArchiveError(
                            f"{src}: refusing to extract link {m.name!r} -> {m.linkname!r}: it points outside"
                        )
                chosen.append(m)
            try:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(out, members=chosen, filter="data")
                else:  # pragma: no cover - Python < 3.11.4; names were checked above
                    tar.extractall(out, members=chosen)
            except tarfile.FilterError as exc:
                raise UnsafeArchiveError(f"{src}: refusing to extract: {exc}") from exc
    elif zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            infos = []
            for info in zf.infolist():
                name = _check_member_name(info.filename, src)
                if members is None or members(name):
                    infos.append(info)
            for info in infos:
                zf.extract(info, out)
    else:
        raise PrepareError(f"{src}: not a tar or zip archive")
    return out
