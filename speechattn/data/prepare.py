"""Fetch, unpack and lay out the public corpora under the data root.

The functions here back the CLI commands (written in ``speechattn.cli``)::

    speechattn data prepare NAME [--root DIR] [--from PATH] [--copy]
        -> prepare_corpus(NAME, root=DIR, source=PATH, copy=COPY)
    speechattn data list [--root DIR]
        -> print(format_corpus_list(list_corpora(DIR)))

:func:`prepare_corpus` takes a corpus from one of three places:

* ``source`` is a local folder that already has the prepared layout (e.g.
  ``/work/shared/data/speechocean762``): it is imported by symlinks (default:
  a real folder whose entries link to the source's) or copied (``copy=True``);
  a local folder holding an *extracted original* archive is converted;
* ``source`` is a local archive: it is extracted and converted;
* ``source`` is None: the original archive is downloaded from the registry URL
  (resumable), checked against its published checksum (and size), then extracted
  and converted. A corpus without a pinned checksum is not downloaded unless the
  caller gives one (``checksum="sha256:HEX"`` / ``"md5:HEX"``, ``--checksum``) or
  explicitly accepts an unverified download (``verify=False``, ``--no-verify``).

Downloads go to ``<archive>.part`` (resumed with HTTP Range requests) and are
renamed to the archive's name only once complete and verified; a download that
fails verification is deleted, with a one-line :class:`ChecksumError` naming the
file and both digests.

The corpus is built in a staging folder and renamed into place, with a
``.prepared`` marker (JSON: how and from where), so a finished corpus is never
half-written and preparing again is a no-op. The source is only ever read.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from speechattn.data.corpora import CORPORA, Corpus, PrepareError, get_corpus
from speechattn.utils.paths import data_root

__all__ = [
    "MARKER",
    "ChecksumError",
    "CorpusStatus",
    "DownloadError",
    "PrepareError",
    "UnsafeArchiveError",
    "corpus_status",
    "download",
    "extract",
    "file_digest",
    "format_corpus_list",
    "list_corpora",
    "parse_checksum",
    "prepare_corpus",
    "read_marker",
    "sha256_file",
]

log = logging.getLogger(__name__)

#: Name of the marker file written into a corpus folder once it is prepared.
MARKER = ".prepared"
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


def _mismatch(path: Path, checksum: str | None, size: int | None) -> str | None:
    """Why ``path`` is not the expected file (None: it is)."""
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
    problem = _mismatch(part, checksum, size)
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
        problem = _mismatch(target, checksum, size)
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


# --------------------------------------------------------------------------- status

@dataclass(frozen=True)
class CorpusStatus:
    """Where a corpus stands under a data root (one row of ``speechattn data list``).

    ``status`` is ``prepared`` (marker present, layout complete), ``present``
    (layout complete but not prepared by speechattn, e.g. a shared copy),
    ``incomplete`` (folder exists, layout incomplete; ``problems`` says what),
    or ``missing``.
    """

    name: str
    path: Path
    status: str
    description: str
    url: str
    license: str
    problems: tuple[str, ...] = ()
    method: str | None = None


def read_marker(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``.prepared`` marker of a corpus folder as a dict, or None."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def corpus_status(name: str, root: str | os.PathLike[str] | None = None) -> CorpusStatus:
    """Status of corpus ``name`` under ``root`` (default: :func:`speechattn.utils.paths.data_root`)."""
    corpus = get_corpus(name)
    folder = data_root(root) / corpus.folder
    marker = read_marker(folder)
    if not folder.exists() and not folder.is_symlink():
        status, problems = "missing", []
    else:
        problems = corpus.check(folder)
        status = "incomplete" if problems else ("prepared" if marker is not None else "present")
    return CorpusStatus(
        name=corpus.name,
        path=folder,
        status=status,
        description=corpus.description,
        url=corpus.url,
        license=corpus.license,
        problems=tuple(problems),
        method=None if marker is None else marker.get("method"),
    )


def list_corpora(root: str | os.PathLike[str] | None = None) -> list[CorpusStatus]:
    """Status of every registered corpus under ``root``, in registry order."""
    return [corpus_status(name, root) for name in CORPORA]


def format_corpus_list(rows: list[CorpusStatus]) -> str:
    """A plain-text table of :func:`list_corpora` rows (for ``speechattn data list``)."""
    header = ("corpus", "status", "path", "description")
    table = [header] + [
        (r.name, r.status + (f" ({r.method})" if r.method else ""), str(r.path), r.description) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3] for row in table]
    for r in rows:
        if r.status == "incomplete" and r.problems:
            lines.append(f"  {r.name}: {'; '.join(r.problems[:3])}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- prepare

def _digests(archive: Path, verified: str | None) -> dict[str, Any]:
    """What the marker records of an archive: its SHA-256 (and MD5 when unverified, to pin),
    and the checksum it was verified against (None: not verified)."""
    out: dict[str, Any] = {"verified_checksum": verified}
    if verified is not None and verified.startswith("sha256:"):
        out["sha256"] = verified.split(":", 1)[1]
    else:
        out["sha256"] = sha256_file(archive)
    if verified is None:
        out["md5"] = file_digest(archive, "md5")
    return out


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)  # does not follow symlinks inside


def _overlaps(a: Path, b: Path) -> bool:
    ra, rb = a.resolve(), b.resolve()
    return ra == rb or ra in rb.parents or rb in ra.parents


def _import_dir(src: Path, staging: Path, copy: bool) -> None:
    """Fill ``staging`` with links to (or copies of) the entries of ``src``."""
    staging.mkdir(parents=True)
    for entry in sorted(src.iterdir()):
        if entry.name == MARKER:
            continue
        dst = staging / entry.name
        if not copy:
            dst.symlink_to(entry.absolute(), target_is_directory=entry.is_dir())
        elif entry.is_dir():
            shutil.copytree(entry, dst)
        else:
            shutil.copy2(entry, dst)


def _from_archive(corpus: Corpus, archive: Path, staging: Path, work_root: Path) -> None:
    with tempfile.TemporaryDirectory(dir=work_root, prefix=f".{corpus.folder}.extract-") as tmp:
        log.info("extracting %s", archive)
        extract(archive, tmp, members=corpus.members)
        log.info("converting %s", corpus.name)
        staging.mkdir(parents=True)
        corpus.convert(Path(tmp), staging)


def prepare_corpus(
    name: str,
    root: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    *,
    copy: bool = False,
    force: bool = False,
    verify: bool = True,
    checksum: str | None = None,
    progress: bool = True,
) -> Path:
    """Make corpus ``name`` available as ``<root>/<folder>`` and return that path.

    Args:
        name: a key of :data:`speechattn.data.corpora.CORPORA`.
        root: the data root (default: :func:`speechattn.utils.paths.data_root`).
        source: a prepared folder to import, a folder with the extracted
            original release, a local archive, or None to download.
        copy: import a prepared folder by copying instead of symlinking.
        force: redo a prepared corpus, or replace a folder that was not
            prepared by speechattn (the source is never modified). Without
            it, a folder that is prepared, or has the complete layout, is
            returned as is.
        verify: check the archive (downloaded, or a local ``source``) against
            its checksum: ``checksum``, else the registry's, and the published
            size. A download with neither checksum is refused (before any
            transfer) unless ``verify=False``, which accepts it unchecked (its
            SHA-256 and MD5 are then logged and recorded in the marker, to pin).
        checksum: ``"sha256:HEX"`` or ``"md5:HEX"`` of the archive, from a
            source the caller trusts; used instead of the registry's.
        progress: show a progress bar while downloading.

    Raises:
        PrepareError: unknown corpus, unusable source, target in the way, or a
            failed download/extraction/conversion (nothing is left half-done);
            :class:`ChecksumError` (a PrepareError): no checksum to verify a
            download with, or an archive that does not match it.
    """
    corpus = get_corpus(name)
    base = data_root(root)
    target = base / corpus.folder
    if not force and target.is_dir():
        if read_marker(target) is not None:
            log.info("%s is already prepared in %s", corpus.name, target)
            return target
        if not corpus.check(target):  # complete layout made elsewhere (e.g. a shared copy): leave it alone
            log.info("%s is already present in %s (not prepared by speechattn; left as is)", corpus.name, target)
            return target

    if checksum is not None:
        algo, digest = parse_checksum(checksum)
        checksum = f"{algo}:{digest}"
    expected = checksum if checksum is not None else corpus.checksum
    src = None if source is None else Path(source).expanduser()
    if src is None and verify and expected is None:
        raise ChecksumError(
            f"{corpus.name}: no published checksum is pinned for {corpus.url}, so the download cannot be "
            "verified; pass --checksum sha256:HEX (or md5:HEX) from a source you trust, or --no-verify to "
            "accept it unchecked"
        )
    if src is not None:
        if not src.exists():
            raise PrepareError(f"{src}: no such file or directory")
        if _overlaps(src, target):
            raise PrepareError(f"source {src} and target {target} are the same or nested; choose another --root")
    if (target.exists() or target.is_symlink()) and not force:
        raise PrepareError(
            f"{target} exists but was not prepared by speechattn (no {MARKER} marker); "
            "move it away or use force=True (--force) to replace it"
        )

    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".{corpus.folder}.partial"
    if staging.exists() or staging.is_symlink():
        _remove(staging)
    info: dict[str, Any] = {"corpus": corpus.name, "url": corpus.url}
    try:
        if src is None:
            archive = download(
                corpus.url, base / ".downloads" / corpus.archive_name, progress=progress,
                checksum=expected if verify else None, size=corpus.size if verify else None,
            )
            info.update(method="download", source=str(archive), **_digests(archive, expected if verify else None))
            if not verify:
                log.warning("%s: accepted without verification (--no-verify): sha256 %s, md5 %s", archive,
                            info["sha256"], info["md5"])
            _from_archive(corpus, archive, staging, base)
        elif src.is_dir():
            problems = corpus.check(src)
            if not problems:
                _import_dir(src, staging, copy)
                info.update(method="copy" if copy else "symlink", source=str(src.absolute()))
            else:
                try:
                    staging.mkdir(parents=True)
                    corpus.convert(src, staging)
                except PrepareError as exc:
                    raise PrepareError(
                        f"{src} is neither a prepared {corpus.name} folder ({problems[0]}) "
                        f"nor an extracted original release ({exc})"
                    ) from exc
                info.update(method="convert", source=str(src.absolute()))
        else:
            problem = _mismatch(src, expected, corpus.size) if verify and expected is not None else None
            if problem is not None:
                raise ChecksumError(
                    f"checksum mismatch for {src}: not the {corpus.name} release ({problem}); "
                    "pass --no-verify to use it anyway"
                )
            _from_archive(corpus, src, staging, base)
            info.update(method="archive", source=str(src.absolute()),
                        **_digests(src, expected if verify else None))
        problems = corpus.check(staging)
        if problems:
            raise PrepareError(f"{corpus.name}: the prepared folder is incomplete: {'; '.join(problems)}")
        info["prepared_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        (staging / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if target.exists() or target.is_symlink():  # force: replace only once the new one is complete
            _remove(target)
        os.replace(staging, target)
    except BaseException:
        if staging.exists() or staging.is_symlink():
            _remove(staging)
        raise
    log.info("prepared %s in %s (%s)", corpus.name, target, info["method"])
    return target
