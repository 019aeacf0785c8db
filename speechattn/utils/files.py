"""Files written atomically: never a half-written file, whatever happens mid-write.

Every file speechattn writes (models, checkpoints, recipes, manifests, logs, command outputs)
goes through :func:`atomic_write`: it is written to a temporary file in the destination folder,
flushed, fsynced and renamed over the destination. A crash, Ctrl-C, a full disk or any error
mid-write leaves either the previous file or none, and no temporary file. The result gets the
permissions of a file created the usual way (``0666`` minus the umask).

A folder (a prepared corpus, a simulated data set) is built in a staging folder next to its
target and moved into place by :func:`replace_dir` once complete, so readers find the old folder,
the new one or none, never a half-built one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, TextIO

__all__ = ["atomic_write", "atomic_write_text", "atomic_open_write", "remove_path", "replace_dir", "write_json"]


def _default_mode() -> int:
    """Permissions of a file created the usual way: ``0666`` minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically move ``tmp_path`` to ``path``.

    The parent folder is created. ``write`` must write to the path it is given, whatever its
    name (pass file formats explicitly: the temporary name ends in ``.tmp``).

    Returns:
        Path: ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_open_write(path: str | os.PathLike[str], write: Callable[[TextIO], None]) -> Path:
    """Like :func:`atomic_write`, but ``write`` gets the temporary file open for UTF-8 text."""

    def to_file(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            write(fh)

    return atomic_write(path, to_file)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def remove_path(path: str | os.PathLike[str]) -> None:
    """Remove a file, a symbolic link (not what it points to) or a folder tree; nothing if absent.

    Symbolic links inside a removed folder are removed, not followed.
    """
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def replace_dir(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move the finished folder ``staging`` to ``target``, replacing what is there.

    Whatever ``target`` is (a folder, a file, a symbolic link) is removed with
    :func:`remove_path` first, then ``staging`` is renamed to it (same file system: keep
    ``staging`` next to ``target``). The old target is only removed once the new folder is
    complete; if the rename fails, ``staging`` is left for the caller to clean up.

    Returns:
        Path: ``target``.
    """
    target = Path(target)
    remove_path(target)
    os.replace(staging, target)
    return target
