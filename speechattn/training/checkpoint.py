"""Safe, atomic persistence of weights and training state.

- Model weights: safetensors (no pickle, no code execution on load).
- Training state (optimizer, step, RNG...): ``torch.save`` of tensors and plain Python values,
  read back with ``torch.load(weights_only=True)``.
- Every file is written to a temporary name in the same folder, flushed, fsynced and renamed,
  so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

__all__ = ["atomic_write", "save_weights", "load_weights", "save_state", "load_state", "write_json"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically move ``tmp_path`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_weights(module_or_state: torch.nn.Module | dict[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write a state dict (tensors only) as safetensors, atomically."""
    state = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) else module_or_state
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp))


def load_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a safetensors state dict."""
    return load_file(str(path))


def save_state(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts), atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training-state dict without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write JSON atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
