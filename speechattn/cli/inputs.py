"""Turn command-line arguments into audio files, and report per-file results.

Commands that take audio (``embed``, ``verify``, ``identify``, ``label``, ``transcribe``)
accept any mix of

* audio files (``a.wav``),
* folders, searched recursively (``recordings/``), and
* list files ``.txt`` / ``.lst`` / ``.scp`` with one path per line, or Kaldi
  ``<id> <path>`` lines (``wav.scp``).

:func:`expand_inputs` resolves them into one ordered, de-duplicated list of paths plus a
list of problems (missing paths, empty folders, bad list lines), so a command can process
what it can and report the rest. :class:`BatchReport` collects per-file outcomes, prints
each failure on stderr the moment it happens and gives the exit code.

:func:`device_option` is the ``--device`` option of every inference command, :func:`threads_option`
the ``--threads`` option of every command that runs a model. :func:`is_file_error` tells which
exceptions are one file's failure (bad audio, I/O, out of memory) rather than a bug, and
:func:`file_error_message` words them in one line.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["AUDIO_EXTENSIONS", "LIST_EXTENSIONS", "BatchReport", "device_option", "expand_inputs", "file_error_message",
           "file_progress", "is_file_error", "is_memory_error", "run_per_file", "threads_option", "unique_name"]

#: Audio file suffixes picked up in folders and accepted as arguments (case-insensitive).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".sph")
#: Suffixes of list files (one path, or ``<id> <path>``, per line).
LIST_EXTENSIONS = (".txt", ".lst", ".scp")

PROG = "speechattn"

Problem = tuple[str, str]

R = TypeVar("R")


def _one_line(text: object) -> str:
    """``text`` as a single line (newlines and runs of blanks collapsed)."""
    return " ".join(str(text).split())


# Words of the RuntimeErrors raised when an allocation fails (torch's CPU allocator: "can't
# allocate memory" / "not enough memory"; CUDA: "CUDA out of memory", torch.OutOfMemoryError).
_MEMORY_WORDS = ("can't allocate memory", "cannot allocate memory", "not enough memory", "out of memory",
                 "defaultcpuallocator", "failed to allocate")


def is_memory_error(exc: BaseException) -> bool:
    """True for a failed allocation: :class:`MemoryError` (NumPy's too), ``torch.OutOfMemoryError``,
    or a RuntimeError of torch's allocator."""
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(word in text for word in _MEMORY_WORDS)
    return False


def is_file_error(exc: BaseException) -> bool:
    """True for the failures that concern one input file and leave the others to process:
    ``ValueError`` (bad audio: :class:`~speechattn.audio.AudioError`, bad values), ``OSError``
    (missing, unreadable, I/O) and failed allocations (:func:`is_memory_error`)."""
    return isinstance(exc, (ValueError, OSError)) or is_memory_error(exc)


def _size_text(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def file_error_message(exc: BaseException) -> str:
    """One line for an exception: ``out of memory (tried to allocate 2.8 GB)`` for a failed
    allocation, ``FILE: No such file or directory`` for a system error, else its message (or its
    class name when it has none)."""
    if is_memory_error(exc):
        text = str(exc)
        match = re.search(r"allocate (\d+) bytes", text)
        if match:
            return f"out of memory (tried to allocate {_size_text(int(match.group(1)))})"
        match = re.search(r"[Tt]ried to allocate ([\d.]+ ?[KMGT]i?B)", text)
        if match:
            return f"out of memory (tried to allocate {match.group(1)})"
        match = re.search(r"allocate ([\d.]+ ?[KMGTP]i?B)", text)  # NumPy: "Unable to allocate 2.6 GiB for..."
        return f"out of memory (tried to allocate {match.group(1)})" if match else "out of memory"
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror if exc.filename is None else f"{exc.filename}: {exc.strerror}"
        if exc.filename2 is not None:
            text += f" -> {exc.filename2}"
        return _one_line(text)
    return _one_line(exc) or type(exc).__name__


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


class BatchReport:
    """Per-file outcomes of a batch command.

    Call :meth:`ok` or :meth:`fail` once per file; a failure is printed on stderr at once
    as ``speechattn: error: FILE: reason``. At the end print :meth:`summary` and exit with
    :attr:`exit_code`::

        report = BatchReport()
        paths, problems = expand_inputs(items)
        report.add_problems(problems)
        for path in paths:
            try:
                ...
            except AudioError as exc:
                report.fail(path, exc)
            else:
                report.ok(path)
        click.echo(report.summary(), err=True)
        ctx.exit(report.exit_code)

    Args:
        echo: print failures as they happen (default True).
        prog: program name at the start of the error lines.
    """

    def __init__(self, *, echo: bool = True, prog: str = PROG) -> None:
        self.echo = echo
        self.prog = prog
        self.succeeded: list[Path] = []
        self.failed: list[tuple[str, str]] = []

    def ok(self, path: str | os.PathLike[str]) -> None:
        """Record a file that was processed."""
        self.succeeded.append(Path(path))

    def fail(self, path: str | os.PathLike[str], reason: str | BaseException) -> None:
        """Record a failed file (or input argument) and print it on stderr now.

        ``reason`` may be an exception, worded by :func:`file_error_message`. A message that
        already starts with ``FILE:`` (as :class:`~speechattn.audio.AudioError`'s do) is not
        prefixed twice.
        """
        if isinstance(reason, BaseException):
            text = file_error_message(reason)
        else:
            text = _one_line(reason) or "failed"
        item = os.fspath(path)
        if text.startswith(f"{item}: "):
            text = text[len(item) + 2 :]
        self.failed.append((item, text))
        if self.echo:
            click.echo(f"{self.prog}: error: {item}: {text}", err=True)

    def add_problems(self, problems: Iterable[tuple[str, str]]) -> None:
        """Record the problems returned by :func:`expand_inputs` as failures."""
        for item, reason in problems:
            self.fail(item, reason)

    @property
    def num_ok(self) -> int:
        return len(self.succeeded)

    @property
    def num_failed(self) -> int:
        return len(self.failed)

    @property
    def exit_code(self) -> int:
        """0 if nothing failed, else 1."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        """One line, e.g. ``12 files done, 2 failed`` (done = processed successfully)."""
        n = self.num_ok
        return f"{n} file{'' if n == 1 else 's'} done, {self.num_failed} failed"

    def __repr__(self) -> str:
        return f"BatchReport({self.summary()})"


def unique_name(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... if already in ``used`` (which it is added to): one
    output file per input even when inputs from different folders share a name."""
    name, i = stem, 2
    while name in used:
        name, i = f"{stem}-{i}", i + 1
    used.add(name)
    return name


def file_progress(path: Path, show: bool) -> Any:
    """A tqdm bar over the seconds of audio in ``path`` (update it with seconds processed).

    Raises:
        AudioError: the file cannot be opened.
    """
    from tqdm import tqdm

    from speechattn.audio import audio_info

    duration = audio_info(path).duration
    return tqdm(total=round(duration, 1), desc=path.name, unit="s", leave=False, disable=not show,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")


def run_per_file(ctx: click.Context, inputs: Sequence[str], out_dir: Path | None, progress: bool | None,
                 process: Callable[[Path, Callable[[float], Any]], R],
                 emit: Callable[[str, Path, R, bool], None]) -> None:
    """The loop of a command that writes one result per audio file (``label``, ``transcribe``).

    Expands ``inputs``, creates ``out_dir`` (if given), and for each file calls
    ``process(path, on_block)`` under a progress bar (``on_block(seconds)`` advances it;
    ``progress=None``: a bar on a terminal only), then ``emit(name, path, result, first)``,
    where ``name`` is the file's unique output stem and ``first`` is true for the first result
    emitted. A file that fails (unreadable audio, bad values, I/O, out of memory: see
    :func:`is_file_error`), or whose output cannot be written, is reported and the rest go on; at
    the end the summary goes to stderr and the command exits with the report's code.
    """
    import sys

    report = BatchReport()
    paths, problems = expand_inputs(inputs)
    report.add_problems(problems)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    show = sys.stderr.isatty() if progress is None else progress
    for path in paths:
        name = unique_name(path.stem, used)
        try:
            with file_progress(path, show) as bar:
                result = process(path, bar.update)
        except Exception as exc:
            if not is_file_error(exc):
                raise
            report.fail(path, exc)
            continue
        try:
            emit(name, path, result, report.num_ok == 0)
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) or not is_file_error(exc):
                raise  # stdout closed (`| head`): stop; anything else is a bug
            report.fail(path, f"cannot write the result: {file_error_message(exc)}")
            continue
        del result  # free it before the next file
        report.ok(path)
    click.echo(report.summary(), err=True)
    ctx.exit(report.exit_code)


def _resolve_device_option(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    """The ``--device`` value as a :class:`torch.device`.

    Raises:
        ValueError: a bad device name, or a CUDA device this machine lacks; the CLI prints it as
            one ``speechattn: error: ...`` line.
    """
    from speechattn.utils.device import resolve_device

    return resolve_device(value)


def device_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--device auto|cpu|cuda|cuda:N`` (default auto), given to the command as a
    :class:`torch.device`; a bad value or a missing GPU is a one-line error."""
    return click.option(
        "--device", default="auto", show_default=True, metavar="DEVICE", callback=_resolve_device_option,
        help="Where to run the model: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N. "
             "It runs in bf16 where the device computes bf16 natively, else in fp32.")(command)


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None:
        import torch

        torch.set_num_threads(value)
    return value


def threads_option(command: Callable[..., Any] | None = None, *, expose_value: bool = False) -> Any:
    """``--threads N``: the CPU threads torch computes with (:func:`torch.set_num_threads`), set as
    soon as the option is parsed; default: torch's (one per core). ``expose_value``: also pass the
    value to the command as ``threads`` (``train`` records it as ``train.threads``)."""
    decorator = click.option(
        "--threads", type=click.IntRange(min=1), default=None, metavar="N", callback=_set_threads,
        expose_value=expose_value,
        help="CPU threads for torch (torch.set_num_threads); default: one per core.")
    return decorator if command is None else decorator(command)
