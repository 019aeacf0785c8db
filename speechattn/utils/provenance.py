"""Where a result came from: the commit of the code that produced it."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["source_commit"]


def source_commit() -> str:
    """``HASH`` or ``HASH+dirty`` (uncommitted changes to tracked files) of the git checkout
    this package runs from; ``""`` when it is not one (an installed wheel) or git is missing."""
    here = Path(__file__).resolve().parent.parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()

    try:
        if not (here / ".git").exists():
            return ""
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if dirty else "")
