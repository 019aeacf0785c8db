"""One model, one file: the weights and everything inference needs, in one safetensors file.

A *model file* (``speechattn export RUN model.safetensors``, and the models shipped inside the
package) is self-contained. Its safetensors header carries one JSON document, a
:class:`ModelHeader`, under the key ``speechattn.model``::

    {"format": "speechattn-model", "version": 1, "task": "labeling", "dtype": "float16",
     "config": {...},   # the recipe's inference sections: features (the frontend), normalize,
                        # model (the architecture), postprocess / decode / eval; never data,
                        # train, augment or loss
     "info": {...},     # labels or tokens, output grid, decision threshold, ... (what the
                        # task's training wrote: classes, grid, tokenizer, threshold)
     "card": {...}}     # provenance: name, training data and its licence, dev / test metrics,
                        # commit, the command that trained it (:class:`ModelCard`)

A run folder (``config.yaml`` + ``model.safetensors``) stays what training writes; its
``model.safetensors`` carries only the ``info`` part (see :mod:`speechattn.models.files`).

Weights may be stored as float16 (``dtype``) to halve the file; they are read back as float32.
Reading a file never runs code (safetensors) and never imports training code.

Errors are one line naming the file (:class:`~speechattn.models.files.ModelFileError`): not a
safetensors file, not a speechattn model file, a newer format version, a corrupt header.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from speechattn.models.files import ModelFileError
from speechattn.utils.files import atomic_write
from speechattn.utils.messages import one_line

__all__ = ["MODEL_FORMAT", "FORMAT_VERSION", "HEADER_KEY", "ModelCard", "ModelHeader", "ModelFile",
           "write_model_file", "read_model_file", "read_header", "count_parameters"]

#: ``format`` of every model file.
MODEL_FORMAT = "speechattn-model"
#: The newest header version this code reads and the one it writes. Bump it when a change would
#: make older readers misread a file; a reader refuses files of a newer version with one line.
FORMAT_VERSION = 1
#: The safetensors header key that holds the :class:`ModelHeader` (JSON).
HEADER_KEY = "speechattn.model"
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class ModelCard:
    """Provenance of a model: what it is, what it was trained on, how well it does.

    Attributes:
        name: the model's short name (``vad``, ``speaker``, ``phones`` for the shipped ones).
        description: one line on what it does.
        data: the training data (corpus and split).
        licence: the training data's licence (and hence the terms the weights carry).
        metrics: ``{"dev": {...}, "test": {...} or None}``; dev chose the checkpoint (and any
            threshold), test (when there is one) was never used for a choice.
        commit: the commit of the code that trained it.
        command: the command that trained it (from the repository root).
        created: when the file was written (ISO 8601, UTC).
        training: steps, minutes, precision and CPU of the training run.
        notes: anything else a user should know (e.g. "dev is also the selection set").
    """

    name: str = ""
    description: str = ""
    data: str = ""
    licence: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    commit: str = ""
    command: str = ""
    created: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


@dataclass
class ModelHeader:
    """Everything inference needs besides the weights (see the module docstring).

    Attributes:
        task: the task that builds and runs the model (``speaker``, ``labeling``, ``ctc``).
        config: the recipe's inference sections (``features``, ``normalize``, ``model``,
            ``postprocess`` / ``decode`` / ``eval``), as plain data; validated into the task's
            recipe type when loaded.
        info: the trained model's metadata (classes, grid, tokenizer, threshold...).
        card: provenance (:class:`ModelCard`).
        dtype: how the weights are stored (``float32`` or ``float16``).
        version: the header version (:data:`FORMAT_VERSION`).
        format: always :data:`MODEL_FORMAT`.
    """

    task: str
    config: dict[str, Any]
    info: dict[str, Any]
    card: ModelCard = field(default_factory=ModelCard)
    dtype: str = "float32"
    version: int = FORMAT_VERSION
    format: str = MODEL_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike[str]) -> "ModelHeader":
        """Parse and check a header; a one-line :class:`ModelFileError` naming ``source`` if it is
        not a speechattn model header, of a newer version, or malformed."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ModelFileError(f"{source}: corrupt model header ({one_line(exc)})") from None
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ModelFileError(f"{source}: not a speechattn model file (no {MODEL_FORMAT!r} header)")
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise ModelFileError(f"{source}: bad model header (version {version!r})")
        if version > FORMAT_VERSION:
            raise ModelFileError(f"{source}: model file format version {version} is newer than this speechattn "
                                 f"reads (up to {FORMAT_VERSION}); upgrade speechattn")
        try:
            card = ModelCard(**data.get("card", {}))
            header = cls(task=str(data["task"]), config=dict(data["config"]), info=dict(data["info"]), card=card,
                         dtype=str(data.get("dtype", "float32")), version=version)
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"no {exc.args[0]!r} entry" if isinstance(exc, KeyError) else one_line(exc)
            raise ModelFileError(f"{source}: bad model header ({detail})") from None
        if header.dtype not in _DTYPES:
            raise ModelFileError(f"{source}: bad model header (dtype {header.dtype!r}, expected one of "
                                 f"{sorted(_DTYPES)})")
        return header


@dataclass
class ModelFile:
    """A model read from (or about to be written to) a model file.

    Attributes:
        header: the :class:`ModelHeader`.
        weights: the state dict, float32 CPU tensors (integer buffers keep their type).
        path: the file it came from (None for one built in memory, e.g. from a run folder).
    """

    header: ModelHeader
    weights: dict[str, Tensor]
    path: Path | None = None

    @property
    def task(self) -> str:
        return self.header.task

    @property
    def card(self) -> ModelCard:
        return self.header.card

    def num_parameters(self) -> int:
        return count_parameters(self.weights)


def count_parameters(weights: Mapping[str, Tensor]) -> int:
    """Floating-point values in a state dict (trainable weights and float buffers such as
    normalisation statistics; integer counters are left out)."""
    return sum(int(t.numel()) for t in weights.values() if t.is_floating_point())


def write_model_file(path: str | os.PathLike[str], header: ModelHeader, weights: Mapping[str, Tensor]) -> Path:
    """Write ``weights`` and ``header`` as one model file, atomically. Floating-point tensors are
    stored in ``header.dtype``."""
    if header.dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {header.dtype!r}")
    dtype = _DTYPES[header.dtype]
    tensors = {k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
               for k, v in weights.items()}
    metadata = {HEADER_KEY: header.to_json()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _open_header(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def read_header(path: str | os.PathLike[str]) -> ModelHeader:
    """The :class:`ModelHeader` of a model file, without reading its weights.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a readable safetensors file, or not a speechattn model file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        meta = _open_header(path)
    except OSError:
        raise
    except Exception as exc:  # SafetensorError: truncated or foreign file
        raise ModelFileError(f"{path}: not a readable safetensors file ({one_line(exc)})") from None
    if HEADER_KEY not in meta:
        raise ModelFileError(f"{path}: not a speechattn model file (a run's model.safetensors needs its run "
                             "folder; `speechattn export RUN FILE` writes a model file)")
    return ModelHeader.from_json(meta[HEADER_KEY], path)


def read_model_file(path: str | os.PathLike[str]) -> ModelFile:
    """Read a model file: header and weights (floating-point weights as float32).

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a readable safetensors file, not a speechattn model file, a newer
            format version, or a corrupt header.
    """
    path = Path(path)
    header = read_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            weights = {name: f.get_tensor(name) for name in f.keys()}
    except OSError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{path}: corrupt weights ({one_line(exc)})") from None
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    return ModelFile(header, weights, path)
