"""Prepare the public corpora under the data root: import, convert, list.

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

Downloading and extracting are :mod:`speechattn.data.fetch`'s: downloads go to
``<archive>.part`` (resumed with HTTP Range requests) and are renamed to the
archive's name only once complete and verified; a download that fails
verification is deleted, with a one-line :class:`~speechattn.data.fetch.ChecksumError`
naming the file and both digests.

The corpus is built in a staging folder and renamed into place
(:func:`speechattn.utils.files.replace_dir`), with a
``.prepared`` marker (JSON: how and from where), so a finished corpus is never
half-written and preparing again is a no-op. The source is only ever read.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechattn.data.corpora import CORPORA, Corpus, PrepareError, get_corpus
from speechattn.data.fetch import (
    ChecksumError,
    download,
    extract,
    file_digest,
    file_mismatch,
    parse_checksum,
    sha256_file,
)
from speechattn.utils.files import remove_path, replace_dir
from speechattn.utils.paths import data_root

__all__ = [
    "MARKER",
    "CorpusStatus",
    "PrepareError",
    "corpus_status",
    "format_corpus_list",
    "list_corpora",
    "prepare_corpus",
    "read_marker",
]

log = logging.getLogger(__name__)

#: Name of the marker file written into a corpus folder once it is prepared.
MARKER = ".prepared"


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
    remove_path(staging)
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
            problem = file_mismatch(src, expected, corpus.size) if verify and expected is not None else None
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
        replace_dir(staging, target)  # force: the old one is replaced only once the new one is complete
    except BaseException:
        remove_path(staging)
        raise
    log.info("prepared %s in %s (%s)", corpus.name, target, info["method"])
    return target
