"""``speechattn export RUN model.safetensors``: a trained model as one self-contained file.

:func:`export_model` reads a run folder (or a model file, or a shipped model name), builds its
:class:`~speechattn.models.modelfile.ModelHeader` (the recipe's inference sections, the
model's metadata, a :class:`~speechattn.models.modelfile.ModelCard` from the run's
``metrics.json`` plus what the caller adds) and writes weights and header atomically, float16 by
default (half the size; :func:`parity` measures what that changes).
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import torch

from speechattn.inference.runs import RunModel, open_model
from speechattn.models.modelfile import ModelCard, write_model_file

__all__ = ["export_model", "model_card"]

_CARD_FIELDS = {f.name for f in dataclasses.fields(ModelCard)}


def model_card(run: RunModel, updates: Mapping[str, Any] | None = None) -> ModelCard:
    """The run's card with ``updates`` applied (None values ignored) and ``created`` set to now."""
    updates = {k: v for k, v in (updates or {}).items() if v is not None}
    unknown = sorted(set(updates) - _CARD_FIELDS)
    if unknown:
        raise ValueError(f"unknown model card fields {unknown}; known: {sorted(_CARD_FIELDS)}")
    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return dataclasses.replace(run.card, **{"created": created, **updates})


def export_model(source: str | os.PathLike[str], out: str | os.PathLike[str], *, dtype: str = "float16",
                 card: Mapping[str, Any] | None = None) -> Path:
    """Write the model of ``source`` (a run folder, a model file or a shipped name) to ``out`` as
    one model file, its floating-point weights stored as ``dtype`` (``float16`` or ``float32``);
    ``card``: model card fields to set (name, description, data, licence, metrics, commit,
    command, training, notes). Returns the path written.

    Raises:
        FileNotFoundError: no such model; ValueError: a model that cannot be used, a bad dtype or
        card field.
    """
    run = open_model(source)
    header = run.header(dtype)
    header.card = model_card(run, card)
    with torch.no_grad():
        return write_model_file(out, header, run.weights)
