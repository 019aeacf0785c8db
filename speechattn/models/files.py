"""A trained model on disk: weights and metadata in one safetensors file, read back safely.

- Model weights: safetensors (no pickle, no code execution on load).
- A run's model (:func:`save_model`): the weights *and* their metadata (classes, tokenizer,
  threshold... what ``model.json`` says) in one safetensors file, ``model.safetensors``, whose
  header carries the metadata; one rename replaces both at once, so a crash never pairs the
  weights of one evaluation with the metadata of another. ``model.json`` is then written from
  the same content, for people and scripts to read; loaders trust the safetensors file
  (:func:`load_model`), and fall back to ``model.json`` only for runs written before.
- Every file is written atomically (:func:`speechattn.utils.files.atomic_write`).

A model file that cannot be used raises :class:`ModelFileError` (a ``ValueError``) with one line
naming the file: corrupt weights or metadata, missing / unexpected tensors, wrong shapes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from speechattn.utils.files import atomic_write, write_json
from speechattn.utils.messages import one_line

__all__ = ["MODEL_FILE", "MODEL_INFO_FILE", "ModelFileError", "save_weights", "load_weights", "save_model",
           "load_model", "load_weights_into"]


#: The model of a run: weights, with the metadata in the safetensors header.
MODEL_FILE = "model.safetensors"


#: A readable copy of the model's metadata (the only copy in runs written before).
MODEL_INFO_FILE = "model.json"


#: Header key of ``MODEL_FILE`` that holds the metadata (JSON text).
_INFO_KEY = "speechattn.model_info"


class ModelFileError(ValueError):
    """A model file that cannot be used: unreadable or corrupt weights or metadata, missing or
    unexpected tensors, tensors of the wrong shape. The message is one line naming the file."""


def save_weights(module_or_state: torch.nn.Module | dict[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write a state dict (tensors only) as safetensors, atomically."""
    state = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) else module_or_state
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp))


def load_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a safetensors state dict."""
    return load_file(str(path))


def save_model(module_or_state: torch.nn.Module | Mapping[str, torch.Tensor], info: Mapping[str, Any],
               run_dir: str | os.PathLike[str]) -> Path:
    """Write a run's model as one unit: ``RUN_DIR/model.safetensors`` holds the weights and
    ``info`` (JSON in its header), replaced by one atomic rename; then ``RUN_DIR/model.json``,
    a readable copy of ``info``. Returns the safetensors path.

    A crash before the rename leaves the previous model whole; a crash after it leaves the new
    model whole (``model.json`` may then lag behind until the next save: loaders do not use it).
    """
    run_dir = Path(run_dir)
    state = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) else module_or_state
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    # One header key only: safetensors writes the header's metadata in hash-map order, so with
    # several keys the same model would give different bytes from one process to the next.
    metadata = {_INFO_KEY: json.dumps(info, sort_keys=False)}
    path = atomic_write(run_dir / MODEL_FILE, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    write_json(info, run_dir / MODEL_INFO_FILE)
    return path


def _read_info(text: str, source: Path, what: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise ModelFileError(f"{source}: corrupt {what} ({one_line(exc)})") from None
    if not isinstance(info, dict):
        raise ModelFileError(f"{source}: corrupt {what} (a JSON {type(info).__name__}, not an object)")
    return info


def load_model(run_dir: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """(weights, metadata, where the metadata came from) of the model in ``run_dir``.

    The metadata is read from ``model.safetensors`` itself when it carries it (written by
    :func:`save_model`), else from ``model.json`` (runs written before).

    Raises:
        FileNotFoundError: no ``model.safetensors`` (or, for an older run, no ``model.json``).
        ModelFileError: an unreadable or corrupt weights file, corrupt metadata.
    """
    run_dir = Path(run_dir)
    path = run_dir / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            weights = {name: f.get_tensor(name) for name in f.keys()}
    except OSError:
        raise
    except Exception as exc:  # SafetensorError and friends: a truncated or foreign file
        raise ModelFileError(f"{path}: not a readable safetensors file ({one_line(exc)})") from None
    if _INFO_KEY in header:
        return weights, _read_info(header[_INFO_KEY], path, "model metadata (header)"), path
    legacy = run_dir / MODEL_INFO_FILE
    if not legacy.is_file():
        raise FileNotFoundError(f"{legacy}: no such file (the model's metadata; {path} carries none)")
    try:
        text = legacy.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{legacy}: corrupt model metadata ({one_line(exc)})") from None
    return weights, _read_info(text, legacy, "model metadata"), legacy


def _shape(shape: torch.Size | tuple[int, ...]) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ")"


def load_weights_into(module: torch.nn.Module, weights: Mapping[str, torch.Tensor],
                      source: str | os.PathLike[str]) -> torch.nn.Module:
    """``module.load_state_dict(weights)`` with a one-line :class:`ModelFileError` naming the first
    bad tensor and ``source`` (the file the weights came from) instead of PyTorch's multi-line
    report: a tensor the model lacks, one the file lacks, or a shape that differs."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    more = lambda names: f" (and {len(names) - 1} more)" if len(names) > 1 else ""  # noqa: E731
    if missing:
        raise ModelFileError(f"{source}: tensor {missing[0]!r} is missing{more(missing)}; "
                             "the file does not hold this run's model")
    if unexpected:
        raise ModelFileError(f"{source}: unexpected tensor {unexpected[0]!r}{more(unexpected)}; "
                             "the file does not hold this run's model")
    for name, ref in expected.items():
        got = weights[name]
        if tuple(got.shape) != tuple(ref.shape):
            raise ModelFileError(f"{source}: tensor {name!r} has shape {_shape(got.shape)}, the model built "
                                 f"from the run's recipe expects {_shape(ref.shape)}")
    module.load_state_dict(dict(weights))
    return module
