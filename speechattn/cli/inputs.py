"""Turn command-line arguments into audio files.

Commands that take audio (``embed``, ``verify``, ``identify``, ``label``, ``transcribe``)
accept any mix of

* audio files (``a.wav``),
* folders, searched recursively (``recordings/``), and
* list files ``.txt`` / ``.lst`` / ``.scp`` with one path per line, or Kaldi
  ``<id> <path>`` lines (``wav.scp``).

:func:`expand_inputs` resolves them into one ordered, de-duplicated list of paths plus a
list of problems (missing paths, empty folders, bad list lines), so a command can process
what it can and report the rest (:mod:`speechattn.cli.batch`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["AUDIO_EXTENSIONS", "LIST_EXTENSIONS", "expand_inputs"]

#: Audio file suffixes picked up in folders and accepted as arguments (case-insensitive).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".sph")
#: Suffixes of list files (one path, or ``<id> <path>``, per line).
LIST_EXTENSIONS = (".txt", ".lst", ".scp")

PROG = "speechattn"

Problem = tuple[str, str]


def _normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    out = []
    for ext in extensions:
        ext = str(ext).strip().lower()
        if not ext:
            continue
        out.append(ext if ext.startswith(".") else "." + ext)
    if not out:
        raise ValueError("extensions must name at least one file suffix")
    return tuple(out)


def _is_audio(path: Path, extensions: tuple[str, ...]) -> bool:
    return path.suffix.lower() in extensions


def _missing_reason(path: Path) -> str:
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "symbolic link loop"
        return "broken symbolic link"
    return "no such file or directory"


def _scan_folder(folder: Path, extensions: tuple[str, ...]) -> tuple[list[Path], str | None]:
    """Audio files under ``folder`` (recursive, sorted), and an error if the walk failed.

    Symbolic links to folders are followed (corpora imported by ``speechattn data prepare``
    are folders of links), each real folder at most once. Hidden entries (``.name``) are
    skipped: they are staging folders, download caches or macOS ``._`` resource files.
    """
    found: list[Path] = []
    errors: list[str] = []
    seen: set[str] = set()

    def onerror(exc: OSError) -> None:
        errors.append(f"{exc.filename}: {exc.strerror or exc}")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=onerror, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link loop or two links to the same folder
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if _is_audio(path, extensions) and path.is_file():
                found.append(path)
    found.sort(key=lambda p: p.parts)
    return found, (errors[0] if errors else None)


def _list_candidates(raw: str, list_file: Path) -> list[Path]:
    """Where a relative path on a line of ``list_file`` may point, in order of preference.

    Relative paths are resolved against the list file's folder. For a Kaldi ``wav.scp``
    the folder above is also tried: the data dirs of a prepared corpus
    (``speechocean762/dev/wav.scp``) hold paths relative to the corpus folder.
    """
    path = Path(raw).expanduser()
    if path.is_absolute():
        return [path]
    base = list_file.parent
    candidates = [base / path]
    if list_file.name == "wav.scp":
        candidates.append(base.parent / path)
    return candidates


def _read_list(list_file: Path, item: str, extensions: tuple[str, ...]) -> tuple[list[Path], list[Problem]]:
    paths: list[Path] = []
    problems: list[Problem] = []
    try:
        text = list_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return [], [(item, "cannot read the list: not UTF-8 text")]
    except OSError as exc:
        return [], [(item, f"cannot read the list: {exc.strerror or exc}")]
    lines = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        lines += 1
        if entry.endswith("|"):
            problems.append((item, f"line {lineno}: command pipes ('... |') are not supported; give a file path"))
            continue
        # The whole line first (a path may contain blanks), then "<id> <path>".
        options = _list_candidates(entry, list_file)
        fields = entry.split(maxsplit=1)
        shown = options[0]
        if len(fields) == 2:
            kaldi = _list_candidates(fields[1], list_file)
            options += kaldi
            shown = kaldi[0]
        chosen = next((p for p in options if p.exists()), None)
        if chosen is None:
            problems.append((item, f"line {lineno}: {shown}: {_missing_reason(shown)}"))
        elif chosen.is_dir():
            found, error = _scan_folder(chosen, extensions)
            if error:
                problems.append((item, f"line {lineno}: {error}"))
            elif not found:
                problems.append((item, f"line {lineno}: {chosen}: no audio files ({', '.join(extensions)}) in folder"))
            paths.extend(found)
        elif not _is_audio(chosen, extensions):
            problems.append((item, f"line {lineno}: {chosen}: not an audio file ({', '.join(extensions)})"))
        else:
            paths.append(chosen)
    if lines == 0:
        problems.append((item, "the list is empty"))
    return paths, problems


def expand_inputs(
    items: Sequence[str | os.PathLike[str]],
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand audio files, folders and list files into audio paths.

    Args:
        items: command-line arguments. Each is

            * an audio file (suffix in ``extensions``, any case),
            * a folder: searched recursively for ``extensions``, sorted by path, following
              symbolic links; hidden files and folders are skipped;
            * a list file (``.txt``, ``.lst``, ``.scp``): one path per line, or Kaldi
              ``<id> <path>`` lines; blank lines and lines starting with ``#`` are ignored;
              relative paths are relative to the list file's folder (for a ``wav.scp``,
              also to the folder above, the layout of prepared corpora). A line may also
              name a folder.
        extensions: audio suffixes (with or without the dot).

    Returns:
        ``(paths, problems)``: paths in argument order, each file once (the first time it
        is met); problems as ``(item, one-line reason)`` for missing paths, folders without
        audio, files that are neither audio nor lists, and unusable list lines (the reason
        starts with ``line N:``). The caller decides whether problems are fatal.
    """
    exts = _normalise_extensions(extensions)
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    paths: list[Path] = []
    problems: list[Problem] = []
    for raw in items:
        item = os.fspath(raw)
        if not item.strip():
            problems.append((item, "empty path"))
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            found, error = _scan_folder(path, exts)
            if error:
                problems.append((item, error))
            elif not found:
                problems.append((item, f"no audio files ({', '.join(exts)}) in folder"))
            paths.extend(found)
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix in exts:
                paths.append(path)
            elif suffix in LIST_EXTENSIONS:
                found, bad = _read_list(path, item, exts)
                paths.extend(found)
                problems.extend(bad)
            else:
                problems.append(
                    (item, f"not an audio file ({', '.join(exts)}) or a list file ({', '.join(LIST_EXTENSIONS)})")
                )
        elif path.exists():
            problems.append((item, "not a regular file or folder"))
        else:
            problems.append((item, _missing_reason(path)))

    unique: list[Path] = []
    seen: set[str] = set()
    for p in paths:
        key = os.path.normcase(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, problems


