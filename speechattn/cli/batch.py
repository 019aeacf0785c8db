"""Per-file batch runs of the commands that take audio, and their reports.

:func:`run_per_file` runs a command's work on every input file: :class:`BatchReport` collects
per-file outcomes, prints each failure on stderr the moment it happens and gives the exit code.
:func:`is_file_error` tells which exceptions are one file's failure (bad audio, I/O, out of
memory) rather than a bug, and :func:`file_error_message` words them in one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from speechattn.cli.inputs import PROG, expand_inputs
from speechattn.utils.messages import one_line

__all__ = ["BatchReport", "file_error_message", "file_progress", "is_file_error", "is_memory_error", "run_per_file",
           "unique_name"]


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
        return one_line(text)
    return one_line(exc) or type(exc).__name__


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
            text = one_line(reason) or "failed"
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


R = TypeVar("R")
