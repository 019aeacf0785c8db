"""Recipes: the typed, validated configuration of a run, and the models it builds.

A recipe file is plain YAML data. :func:`load_task_recipe` reads its ``task:`` key, looks the task
up in the task registry (:mod:`speechattn.recipes.registry`: ``speaker``, ``labeling``, ``ctc``
and whatever else registered) and validates the whole file into that task's recipe dataclass
(:mod:`speechattn.recipes.speaker`, :mod:`~speechattn.recipes.labeling`,
:mod:`~speechattn.recipes.ctc`) with :mod:`speechattn.recipes.schema`: unknown or mistyped keys
are a :class:`ConfigError` naming the file, the key and (for a typo) the closest valid key; an
unknown task is an :class:`~speechattn.recipes.registry.UnknownTaskError` (a ConfigError) listing
the known ones. :mod:`speechattn.recipes.builders` builds the model a recipe describes, for
training and for inference alike.

This layer imports no training code: loading a trained run needs only the recipe and the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from speechattn.recipes.registry import DEFAULT_TASK, UnknownTaskError, get_task, task_names
from speechattn.recipes.schema import ConfigError, load_recipe

__all__ = ["RECIPES", "ConfigError", "UnknownTaskError", "recipe_class", "load_task_recipe"]


def __getattr__(name: str) -> Any:
    if name == "RECIPES":  # the registered task names, now (tasks may register after this import)
        return task_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def recipe_class(task: str) -> type:
    """The recipe dataclass of ``task`` (a registered task name or alias).

    Raises:
        UnknownTaskError: no such task.
    """
    return get_task(task).recipe_class()


def load_task_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """Validate a recipe file (plus ``--set`` overrides) into its task's recipe dataclass.

    The task is the file's ``task:`` key (``speaker`` when there is none). A recipe naming a task
    by an alias (e.g. ``frame_labels``, written by earlier versions) loads as the task's
    canonical name (``labeling``).

    Raises:
        UnknownTaskError: the ``task:`` key names no registered task (one line naming the file).
        ConfigError: anything else wrong with the file.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) if path.exists() else None
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        raw = None  # load_recipe reports the problem (a syntax error with its line)
    task = raw.get("task", DEFAULT_TASK) if isinstance(raw, dict) else DEFAULT_TASK
    entry = get_task(task, source=path)
    if task != entry.name:  # an alias: validated, and saved with the run, under the canonical name
        overrides = [f"task={entry.name}", *overrides]
    return load_recipe(entry.recipe_class(), path, overrides)
