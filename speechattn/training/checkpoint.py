"""Training checkpoints (optimizer, step, RNG states...), saved atomically and read back safely.

``torch.save`` of tensors and plain Python values, read back with ``torch.load(weights_only=True)``:
a checkpoint that would import or call anything is refused before any of it runs
(:class:`CheckpointError`, a ``ValueError`` with one line naming the file). Every file is written to
a temporary name in the same folder, flushed, fsynced and renamed, so a crash never leaves a
half-written checkpoint behind. The trained model itself is written by
:func:`speechattn.models.files.save_model`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from speechattn.utils.files import atomic_write
from speechattn.utils.messages import one_line

__all__ = ["CheckpointError", "save_state", "load_state"]


class CheckpointError(ValueError):
    """A training checkpoint that cannot be used: unreadable, or holding objects that would run
    code on loading (refused before anything runs). The message is one line naming the file."""


def save_state(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts), atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def _refusal(exc: BaseException) -> str:
    """One-line reason of a failed ``torch.load(weights_only=True)``."""
    text = str(exc)
    found = re.search(r"unsupported global:? (?:GLOBAL )?(\S+)", text, re.IGNORECASE)
    if found:
        return (f"it holds a pickled object ({found.group(1).rstrip('.,')}) that would run code on loading; "
                "refused without running it")
    if "Weights only load failed" in text:
        detail = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else ""
        detail = one_line(detail.split("Check the documentation", 1)[0]) or "not a plain training checkpoint"
        return f"not a plain training checkpoint ({detail}); refused"
    return f"not a readable training checkpoint ({one_line(text) or type(exc).__name__})"


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training-state dict without unpickling arbitrary objects.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: an unreadable file, or one holding objects outside plain tensors,
            numbers, strings and containers (e.g. a pickle that would call ``os.system``):
            refused before any of it runs.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # UnpicklingError, RuntimeError (not a zip), EOFError (truncated)...
        raise CheckpointError(f"{path}: {_refusal(exc)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a training checkpoint (a {type(state).__name__}, not a dict)")
    return state
