"""Recipes: the typed, validated configuration of a run, and the models it builds.

A recipe file is plain YAML data. :func:`load_task_recipe` reads its ``task:`` key and validates
the whole file into that task's recipe dataclass (:mod:`speechattn.recipes.speaker`,
:mod:`~speechattn.recipes.labeling`, :mod:`~speechattn.recipes.ctc`) with
:mod:`speechattn.recipes.schema`: unknown or mistyped keys are a :class:`ConfigError` naming the
file, the key and (for a typo) the closest valid key. :mod:`speechattn.recipes.builders` builds
the model a recipe describes, for training and for inference alike.

This layer imports no training code: loading a trained run needs only the recipe and the model.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Sequence

import yaml

from speechattn.recipes.schema import ConfigError, load_recipe

__all__ = ["RECIPES", "ConfigError", "recipe_class", "load_task_recipe"]


#: task name -> "module:recipe class"; a recipe imports only its own task's code.
_RECIPE_CLASSES = {
    "speaker": "speechattn.recipes.speaker:SpeakerRecipe",
    "frame_labels": "speechattn.recipes.labeling:LabelRecipe",
    "ctc": "speechattn.recipes.ctc:CTCRecipe",
}

RECIPES = tuple(_RECIPE_CLASSES)


def recipe_class(task: str) -> type:
    """The recipe dataclass of ``task`` (a key of :data:`RECIPES`)."""
    module, _, name = _RECIPE_CLASSES[task].partition(":")
    return getattr(importlib.import_module(module), name)


def load_task_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """Validate a recipe file (plus ``--set`` overrides) into its task's recipe dataclass."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) if path.exists() else None
    except yaml.YAMLError:
        raw = None  # load_recipe reports the syntax error with its line
    task = raw.get("task", "speaker") if isinstance(raw, dict) else "speaker"
    if task not in _RECIPE_CLASSES:
        raise ConfigError(f"'task' must be one of {sorted(_RECIPE_CLASSES)}, got {task!r}", source=str(path),
                          key="task")
    return load_recipe(recipe_class(task), path, overrides)
