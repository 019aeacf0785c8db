"""Error messages on one line: the command line prints every expected error as one line naming
the file and the problem."""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(text: object) -> str:
    """``str(text)`` on a single line: newlines and runs of blanks collapsed to one space."""
    return " ".join(str(text).split())
