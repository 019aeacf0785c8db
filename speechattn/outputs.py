"""Result files written atomically: never a half-written output, whatever happens mid-write.

Every file a command produces (embeddings, labels, transcripts, plots) goes through
:func:`write_output`: it is written to a temporary file in the destination folder
(:func:`speechattn.training.checkpoint.atomic_write`), flushed, fsynced and renamed over the
destination. A crash, Ctrl-C, a full disk or any error mid-write leaves either the previous file
or none, and no temporary file. The result gets the permissions of a file created the usual way
(``0666`` minus the umask).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

__all__ = ["write_output", "write_text_output"]


def write_output(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically move the temporary file to ``path``.

    The parent folder is created. ``write`` must write to the path it is given, whatever its
    name (pass file formats explicitly: the temporary name ends in ``.tmp``).

    Returns:
        Path: ``path``.
    """
    from speechattn.training.checkpoint import atomic_write

    return atomic_write(path, write)


def write_text_output(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_output`)."""
    return write_output(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
