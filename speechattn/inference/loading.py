"""``speechattn.load(NAME)``: the ready predictor of any model, whatever its task.

    import speechattn
    vad = speechattn.load("vad")                       # shipped with the package
    vad.label_file("meeting.wav").segments
    speaker = speechattn.load("speaker")
    speaker.verify(speaker.embed_file("a.wav"), speaker.embed_file("b.wav"))
    speechattn.load("phones").transcribe_file("x.wav").text
    speechattn.load("runs/vad")                        # a run folder, or a model file

The task is read from the model (a model file's header, or a run's ``config.yaml``), and the
task's predictor class loads it.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from speechattn.inference.runs import load_run_recipe, locate_model
from speechattn.recipes.registry import get_task, resolve

__all__ = ["load", "model_task", "predictor_class"]

def predictor_class(task: str) -> type:
    """The predictor class of ``task`` (its entry in :mod:`speechattn.recipes.registry`);
    an unknown task is a one-line :class:`~speechattn.recipes.registry.UnknownTaskError`."""
    return resolve(get_task(task).predictor)


def model_task(source: str | os.PathLike[str]) -> str:
    """The task of a shipped model name, a model file or a run folder, read cheaply (a header or
    ``config.yaml``, not the weights)."""
    path, header = locate_model(source)
    return header.task if header is not None else str(load_run_recipe(path).task)


def load(source: str | os.PathLike[str], device: str | torch.device = "auto", **kwargs: Any) -> Any:
    """The ready predictor of ``source``: a shipped model name (``speechattn models`` lists them),
    a model file (``speechattn export``) or a run folder (``speechattn train``), on ``device``.
    ``kwargs`` go to the predictor's loader (e.g. ``beam=4`` for a CTC model).

    Returns a :class:`~speechattn.inference.Labeler`, :class:`~speechattn.inference.SpeakerRecognizer`
    or :class:`~speechattn.inference.Transcriber`, by the model's task.
    """
    return predictor_class(model_task(source)).load(source, device=device, **kwargs)
