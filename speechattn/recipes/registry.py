"""The task registry: every task registers once, here, and everything that dispatches on a task
name (loading a recipe, training, the task commands of the CLI, ``speechattn evaluate``) looks it
up here.

A task's entry names its pieces as ``"module:attr"`` strings, imported only when used, so this
module imports nothing above the recipes layer (and ``speechattn --help`` imports no task code):

- ``recipe``: the recipe dataclass, with a ``task: Literal[NAME]`` field and a ``train``
  block (:class:`~speechattn.recipes.train.TrainConfig`); ``data.root`` if it reads data;
- ``training``: the training task, ``cls(recipe, progress=None)``, the interface the shared
  trainer runs (:class:`speechattn.training.trainer.Task`);
- ``model``: the function that builds the task's model from its recipe (for training and for
  inference alike; its arguments are the task's own);
- ``predictor``: the inference class (``from_run(run_dir, device="auto")``);
- ``evaluator``: ``evaluate_run(run_dir, data, *, data_root=None, device="auto",
  on_skip=None, **options) -> dict`` (the metrics ``speechattn evaluate`` prints), where
  ``options`` are among the entry's ``evaluate_options``;
- ``commands``: the task's CLI verbs (click commands), with the one-line help that
  ``speechattn --help`` shows without importing them.

Adding a task is one :func:`register_task` call (the three built-in tasks are registered at the
end of this module)::

    register_task(TaskEntry(
        name="toy",
        description="a toy task",
        recipe="mypackage.toy:ToyRecipe",
        training="mypackage.toy:ToyTask",
        model="mypackage.toy:build_toy_model",
        predictor="mypackage.toy:ToyPredictor",
        evaluator="mypackage.toy:evaluate_run",
        commands=(TaskCommand("toy-predict", "mypackage.toy:predict", "Predict with a toy run."),),
    ))

A task name that is not registered (in a recipe's ``task:`` key, a run's ``config.yaml``...) is an
:class:`UnknownTaskError`: one line naming the input, the closest known name and all of them.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from speechattn.recipes.schema import ConfigError

__all__ = [
    "DEFAULT_TASK",
    "TaskCommand",
    "TaskEntry",
    "UnknownTaskError",
    "get_task",
    "register_task",
    "resolve",
    "same_task",
    "task_commands",
    "task_names",
    "unregister_task",
]

#: The task of a recipe without a ``task:`` key.
DEFAULT_TASK = "speaker"

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class UnknownTaskError(ConfigError):
    """A task name that no task registered (a :class:`ConfigError`, hence a ``ValueError``): one
    line naming the input (``source``, when given), the closest known name and the known names."""

    def __init__(self, task: Any, known: tuple[str, ...], *, source: str | os.PathLike[str] | None = None,
                 suggestion: str | None = None) -> None:
        self.task = task
        self.known = known
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        super().__init__(f"unknown task {task!r}{hint}; known tasks: {', '.join(known)}", source=source, key="task")


def resolve(target: str) -> Any:
    """The object a ``"module:attr"`` string names (``attr`` may be dotted), imported now."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class TaskCommand:
    """A CLI verb of a task: ``speechattn NAME ...`` runs the click command ``target``
    (``"module:attr"``); ``help`` is the line ``speechattn --help`` shows (keep it equal to the
    command's own first docstring line)."""

    name: str
    target: str
    help: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"command name {self.name!r}: lower-case letters, digits, '-' and '_'")
        if not _TARGET.match(self.target):
            raise ValueError(f"command {self.name!r}: target {self.target!r} is not 'module:attr'")
        if not self.help or "\n" in self.help:
            raise ValueError(f"command {self.name!r}: help must be one non-empty line")


@dataclass(frozen=True)
class TaskEntry:
    """Everything the package needs to know about one task (see the module docstring for what
    each ``"module:attr"`` must be).

    Attributes:
        name: the canonical task name (a recipe's ``task:`` key, the ``task`` of its model
            metadata).
        description: what the task does, one line.
        recipe, training, model, predictor, evaluator: ``"module:attr"`` of its pieces.
        commands: its CLI verbs.
        aliases: older names still accepted for it (recipes and run folders written before).
        evaluate_options: keyword arguments of ``evaluator`` beyond the common ones, that
            ``speechattn evaluate`` passes when given (``trials``, ``cohort``, ``det_path``, ``beam``).
    """

    name: str
    description: str
    recipe: str
    training: str
    model: str
    predictor: str
    evaluator: str
    commands: tuple[TaskCommand, ...] = ()
    aliases: tuple[str, ...] = ()
    evaluate_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (self.name, *self.aliases):
            if not _NAME.match(name):
                raise ValueError(f"task name {name!r}: lower-case letters, digits, '-' and '_'")
        for field in ("recipe", "training", "model", "predictor", "evaluator"):
            if not _TARGET.match(getattr(self, field)):
                raise ValueError(f"task {self.name!r}: {field} {getattr(self, field)!r} is not 'module:attr'")
        object.__setattr__(self, "commands", tuple(self.commands))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "evaluate_options", tuple(self.evaluate_options))
        if not all(isinstance(c, TaskCommand) for c in self.commands):
            raise TypeError(f"task {self.name!r}: commands must be TaskCommand entries")

    def recipe_class(self) -> type:
        """The recipe dataclass (imported now)."""
        return resolve(self.recipe)

    def training_class(self) -> type:
        """The training task class (imported now)."""
        return resolve(self.training)

    def model_builder(self) -> Callable[..., Any]:
        """The function building the task's model from its recipe (imported now)."""
        return resolve(self.model)

    def predictor_class(self) -> type:
        """The inference class (imported now)."""
        return resolve(self.predictor)

    def evaluator_function(self) -> Callable[..., dict[str, Any]]:
        """The task's ``evaluate_run`` (imported now)."""
        return resolve(self.evaluator)


_TASKS: dict[str, TaskEntry] = {}  # canonical name -> entry, in registration order
_ALIASES: dict[str, str] = {}  # every accepted name (canonical ones too) -> canonical name


def register_task(entry: TaskEntry) -> TaskEntry:
    """Register a task; returns ``entry``.

    Raises:
        ValueError: its name or an alias is already a task's name or alias, or one of its commands
            is already another task's.
    """
    taken = [n for n in (entry.name, *entry.aliases) if n in _ALIASES]
    if taken:
        raise ValueError(f"task {entry.name!r}: {taken[0]!r} is already the task {_ALIASES[taken[0]]!r}")
    owners = {c.name: e.name for e in _TASKS.values() for c in e.commands}
    names = [c.name for c in entry.commands]
    for verb in names:
        if verb in owners:
            raise ValueError(f"task {entry.name!r}: command {verb!r} is already a command of the task {owners[verb]!r}")
        if names.count(verb) > 1:
            raise ValueError(f"task {entry.name!r}: command {verb!r} is listed twice")
    _TASKS[entry.name] = entry
    for name in (entry.name, *entry.aliases):
        _ALIASES[name] = entry.name
    return entry


def unregister_task(name: str) -> TaskEntry:
    """Remove a task (by its name or an alias) and its aliases; returns its entry."""
    entry = get_task(name)
    del _TASKS[entry.name]
    for key in [k for k, v in _ALIASES.items() if v == entry.name]:
        del _ALIASES[key]
    return entry


def task_names() -> tuple[str, ...]:
    """The canonical names of the registered tasks, sorted."""
    return tuple(sorted(_TASKS))


def get_task(name: Any, *, source: str | os.PathLike[str] | None = None) -> TaskEntry:
    """The entry of task ``name`` (its canonical name or an alias).

    Raises:
        UnknownTaskError: no task of that name; ``source`` (the file the name came from) begins
            the message.
    """
    canonical = _ALIASES.get(name) if isinstance(name, str) else None
    if canonical is None:
        close = difflib.get_close_matches(name, list(_ALIASES), n=1, cutoff=0.6) if isinstance(name, str) else []
        raise UnknownTaskError(name, task_names(), source=source, suggestion=_ALIASES[close[0]] if close else None)
    return _TASKS[canonical]


def same_task(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` name the same task (an alias and its canonical name do); names
    that are not registered are compared as they are."""
    def canonical(name: Any) -> Any:
        return _ALIASES.get(name, name) if isinstance(name, str) else name

    return canonical(a) == canonical(b)


def task_commands() -> dict[str, tuple[str, str]]:
    """Every registered task's CLI verbs: name -> (``"module:attr"``, one-line help)."""
    return {c.name: (c.target, c.help) for entry in _TASKS.values() for c in entry.commands}


# ----------------------------------------------------------------------------- built-in tasks

register_task(TaskEntry(
    name="speaker",
    description="speaker recognition: embeddings, verification, identification",
    recipe="speechattn.recipes.speaker:SpeakerRecipe",
    training="speechattn.tasks.speaker:SpeakerTask",
    model="speechattn.recipes.builders:build_embedder",
    predictor="speechattn.inference.speaker:SpeakerRecognizer",
    evaluator="speechattn.evaluation.speaker:evaluate_run",
    commands=(
        TaskCommand("embed", "speechattn.cli.speaker:embed", "Write speaker embeddings of audio files."),
        TaskCommand("verify", "speechattn.cli.speaker:verify", "Score whether two recordings share a speaker."),
        TaskCommand("identify", "speechattn.cli.speaker:identify", "Name the enrolled speaker of each recording."),
    ),
    evaluate_options=("trials", "cohort", "det_path"),
))

register_task(TaskEntry(
    name="labeling",
    description="frame labeling (e.g. voice activity): classes of every output frame, and their segments",
    recipe="speechattn.recipes.labeling:LabelRecipe",
    training="speechattn.tasks.labeling:LabelTask",
    model="speechattn.recipes.builders:build_labeler",
    predictor="speechattn.inference.labeler:Labeler",
    evaluator="speechattn.evaluation.labeling:evaluate_run",
    commands=(TaskCommand("label", "speechattn.cli.labeling:label", "Label the frames of audio files."),),
    aliases=("frame_labels",),  # its earlier name: recipes and run folders written with it still load
))

register_task(TaskEntry(
    name="ctc",
    description="CTC transcription (phones or characters)",
    recipe="speechattn.recipes.ctc:CTCRecipe",
    training="speechattn.tasks.ctc:CTCTask",
    model="speechattn.recipes.builders:build_ctc_model",
    predictor="speechattn.inference.transcriber:Transcriber",
    evaluator="speechattn.evaluation.ctc:evaluate_run",
    commands=(TaskCommand("transcribe", "speechattn.cli.ctc:transcribe", "Transcribe audio files."),),
    evaluate_options=("beam",),
))
