"""Loading a trained run, and what every run-based predictor shares.

:func:`load_run_model` reads a run folder (``config.yaml`` and ``model.safetensors``) with
one-line errors; :class:`RunPredictor` is the base of :class:`~speechattn.inference.SpeakerRecognizer`,
:class:`~speechattn.inference.Labeler` and :class:`~speechattn.inference.Transcriber`: the model
in eval mode on its device, the precision to run in there, and the recipe's feature extractor.

Inference follows the hardware it runs on, not the precision the model was trained in: bf16
autocast where the device computes bf16 natively (see :mod:`speechattn.utils.device`), fp32
elsewhere. Features are computed on the CPU; the model runs on its device; results come back to
the CPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from speechattn.audio import FeatureExtractor, resample
from speechattn.models.files import (
    MODEL_FILE,
    ModelFileError,
    load_model,
    load_weights_into,
)
from speechattn.models.modelfile import ModelCard, ModelFile, ModelHeader, read_header, read_model_file
from speechattn.models.pretrained import shipped_model_path, shipped_models
from speechattn.recipes import load_task_recipe, recipe_class
from speechattn.recipes.inference import inference_sections, recipe_from_sections
from speechattn.recipes.registry import same_task
from speechattn.utils.device import autocast, resolve_device, resolve_precision
from speechattn.utils.messages import one_line

__all__ = ["load_run_recipe", "load_run", "load_run_model", "locate_model", "open_model", "run_card", "RunModel",
           "ModelFileError", "model_device", "prepare_inference", "RunPredictor"]

log = logging.getLogger(__name__)


def load_run_recipe(run_dir: str | os.PathLike[str]) -> Any:
    """The resolved recipe saved in ``RUN_DIR/config.yaml``."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: not a speechattn run directory (no config.yaml)")
    return load_task_recipe(path)


@dataclass
class RunModel:
    """A trained model as :func:`load_run_model` read it, from a run folder, a model file or a
    shipped model name.

    Attributes:
        recipe: the recipe: the run's ``config.yaml``, or, for a model file, the task's recipe
            rebuilt from the file's inference sections (training sections at their defaults).
        weights: the state dict (CPU tensors, floating point as float32).
        info: the model's metadata (classes, tokenizer, threshold...).
        weights_path: the file the weights came from.
        info_path: the file the metadata came from: the weights file itself, or ``model.json``
            for runs written before the metadata moved into it.
        card: the model's provenance (:class:`~speechattn.models.modelfile.ModelCard`); for a run
            folder, built from its ``metrics.json``.
    """

    recipe: Any
    weights: dict[str, Tensor]
    info: dict[str, Any]
    weights_path: Path
    info_path: Path
    card: ModelCard = field(default_factory=ModelCard)

    @property
    def task(self) -> str:
        return str(self.recipe.task)

    def load_into(self, module: torch.nn.Module) -> torch.nn.Module:
        """Load the weights into ``module`` (built from the recipe); a missing, unexpected or
        wrongly shaped tensor is a one-line :class:`ModelFileError` naming it and the file."""
        return load_weights_into(module, self.weights, self.weights_path)

    def header(self, dtype: str = "float32") -> ModelHeader:
        """The model-file header of this model (see :mod:`speechattn.models.modelfile`)."""
        return ModelHeader(task=self.task, config=inference_sections(self.recipe), info=dict(self.info),
                           card=self.card, dtype=dtype)

    @contextlib.contextmanager
    def reading_info(self) -> Iterator[None]:
        """Errors while interpreting :attr:`info` (a missing key, a value of the wrong type)
        become a one-line :class:`ModelFileError` naming :attr:`info_path`."""
        try:
            yield
        except ModelFileError:
            raise
        except KeyError as exc:
            raise ModelFileError(f"{self.info_path}: bad model metadata (no {exc.args[0]!r} entry)") from None
        except (TypeError, ValueError, AttributeError, IndexError) as exc:
            detail = one_line(exc) or type(exc).__name__
            raise ModelFileError(f"{self.info_path}: bad model metadata ({detail})") from None


def run_card(run_dir: str | os.PathLike[str], recipe: Any) -> ModelCard:
    """A :class:`ModelCard` for a run folder, from its recipe and ``metrics.json`` (when the run
    has finished): dev (and test) metrics, steps, minutes, precision, and the commit if recorded."""
    run_dir = Path(run_dir)
    summary: dict[str, Any] = {}
    try:
        summary = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        pass
    data = getattr(recipe, "data", None)
    refs = [f"{k}: {getattr(data, k)}" for k in ("train", "train_shards", "dev", "test")
            if isinstance(getattr(data, k, None), str)]
    simulate = getattr(data, "simulate", None)
    if simulate is not None:
        refs = [f"simulated from {simulate.train_speech} + {simulate.noise} (dev: {simulate.dev_speech})"]
    training = {k: summary[k] for k in ("steps", "epochs", "minutes", "precision", "device", "best_epoch")
                if k in summary}
    return ModelCard(name=run_dir.name, data="; ".join(refs), commit=str(summary.get("commit", "")),
                     metrics={"dev": summary.get("dev"), "test": summary.get("test")}, training=training)


def _check_task(run: RunModel, source: Any, task: str, what: str) -> RunModel:
    if not same_task(run.task, task):
        raise ValueError(f"{source}: a {run.task!r} model, not a {what}")
    info_task = run.info.get("task", task)
    if not same_task(str(info_task), task):
        raise ModelFileError(f"{run.info_path}: metadata of a {info_task!r} model, but the model is a {task!r} model")
    return run


def _from_run_dir(run_dir: Path, task: str, what: str) -> RunModel:
    recipe = load_run_recipe(run_dir)
    if not same_task(recipe.task, task):  # an alias names the same task (old run folders)
        raise ValueError(f"{run_dir}: a {recipe.task!r} run, not a {what}")
    weights = run_dir / MODEL_FILE
    if not weights.exists():
        raise FileNotFoundError(f"{weights}: no trained weights (training has not reached its first evaluation)")
    tensors, info, info_path = load_model(run_dir)
    return RunModel(recipe, tensors, info, weights, info_path, run_card(run_dir, recipe))


def _from_model_file(mf: ModelFile) -> RunModel:
    path = mf.path if mf.path is not None else Path("<model>")
    recipe = recipe_from_sections(recipe_class(mf.task), mf.header.config, str(path))
    return RunModel(recipe, mf.weights, mf.header.info, path, path, mf.header.card)


def locate_model(source: str | os.PathLike[str]) -> tuple[Path, ModelHeader | None]:
    """Where the model named by ``source`` is: ``(model file, its header)`` for a shipped model
    name or a model file, ``(run folder, None)`` for a run folder or a run's own
    ``model.safetensors`` (whose header is not a model file's). Reads a header, not weights.

    Raises:
        FileNotFoundError: none of these (the message lists the shipped names).
        ModelFileError: a file that is neither a model file nor a run's weights.
    """
    path = Path(source)
    if path.is_dir():
        return path, None
    if path.is_file():
        try:
            return path, read_header(path)
        except ModelFileError:
            if path.name == MODEL_FILE and (path.parent / "config.yaml").is_file():
                return path.parent, None  # a run's weights file: use its run folder
            raise
    shipped = shipped_model_path(str(source))
    if shipped is not None and os.sep not in str(source):
        return shipped, read_header(shipped)
    names = ", ".join(shipped_models()) or "none installed"
    raise FileNotFoundError(f"{source}: no such model: not a shipped model name ({names}), "
                            "a model file or a run folder")


def open_model(source: str | os.PathLike[str]) -> RunModel:
    """The model named by ``source``, whatever its task: a shipped model name (``vad``,
    ``speaker``, ``phones``: :func:`~speechattn.models.pretrained.shipped_models`), a model file
    (``speechattn export``), or a run folder (``speechattn train``; also a run's own
    ``model.safetensors``, read with its folder's ``config.yaml``); see :func:`locate_model`.

    Raises:
        FileNotFoundError: none of these (the message lists the shipped names).
        ModelFileError / ConfigError (ValueErrors): a file or run that cannot be used.
    """
    path, header = locate_model(source)
    if header is None:
        recipe = load_run_recipe(path)
        return _from_run_dir(path, recipe.task, f"{recipe.task} model")
    return _from_model_file(read_model_file(path))


def load_run_model(source: str | os.PathLike[str], task: str, what: str,
                   required: Sequence[str] = ()) -> RunModel:
    """The recipe, weights and metadata of a trained model of ``task``, with one-line errors.

    ``source``: a shipped model name, a model file or a run folder (see :func:`open_model`).
    ``what`` names the model kind in the error for a model of another task; ``required``: the
    metadata entries the caller needs (missing ones are an error naming the file).

    Raises:
        FileNotFoundError: no such model, or a run without a model yet.
        ValueError: a model of another task; :class:`ModelFileError` (a ValueError): corrupt
            weights or metadata, metadata of another task or missing a ``required`` entry.
    """
    path = Path(source)
    if path.is_dir():
        run = _from_run_dir(path, task, what)
    else:
        run = open_model(source)
    _check_task(run, source, task, what)
    for key in required:
        if key not in run.info:
            raise ModelFileError(f"{run.info_path}: bad model metadata (no {key!r} entry)")
    return run


def load_run(run_dir: str | os.PathLike[str], task: str, what: str) -> tuple[Any, dict[str, Tensor], dict[str, Any]]:
    """(recipe, weights, metadata) of a trained run of ``task``, with one-line errors (see
    :func:`load_run_model`)."""
    run = load_run_model(run_dir, task, what)
    return run.recipe, run.weights, run.info


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def prepare_inference(model: torch.nn.Module, device: str | torch.device | None, what: str
                      ) -> tuple[torch.nn.Module, torch.device, str]:
    """(``model`` in eval mode on ``device``, the device, the precision to run in there).

    ``device``: ``auto`` (a CUDA GPU when there is one, else the CPU), ``cpu``, ``cuda``,
    ``cuda:N``, a :class:`torch.device`, or None for where ``model`` already is. The precision is
    ``auto`` resolved on that device (bf16 only where native), whatever the training precision;
    it is logged at INFO, naming the model as ``what``.

    Raises:
        ValueError: a bad device string, or a CUDA device this machine lacks.
    """
    dev = model_device(model) if device is None else resolve_device(device)
    precision = resolve_precision("auto", dev, warn=False)
    log.info("%s on %s in %s", what, dev, precision)
    return model.to(dev).eval(), dev, precision


class RunPredictor:
    """What the predictors built from a trained model share.

    Load one with :meth:`load` (``Labeler.load("vad")``, ``SpeakerRecognizer.load("model.safetensors")``,
    ``Transcriber.load("runs/asr")``).

    Args:
        recipe: the run's recipe.
        model: the trained model (put in eval mode).
        what: the model's kind, for the log line that says where and in what precision it runs.
        device: where to run the model (moved there): ``auto``, ``cpu``, ``cuda``, ``cuda:N``;
            None: where it is.

    Attributes:
        model: the model, in eval mode, on :attr:`device`.
        device: where the model runs (inputs are moved there, outputs come back to the CPU).
        run_precision: ``bf16`` where ``device`` computes bf16 natively, else ``fp32``.
        extractor: the recipe's feature extractor (runs on the CPU).
        sample_rate: the rate the model's features are computed at.
    """

    #: The model's provenance (set by ``from_run`` / :meth:`load`; empty for a model built in memory).
    card: ModelCard = ModelCard()

    def __init__(self, recipe: Any, model: torch.nn.Module, what: str,
                 device: str | torch.device | None = None) -> None:
        self.recipe = recipe
        self.model, self.device, self.run_precision = prepare_inference(model, device, what)
        self.extractor = FeatureExtractor(recipe.features).eval()
        self.sample_rate = int(recipe.features.sample_rate)

    @classmethod
    def from_run(cls, source: str | os.PathLike[str], device: str | torch.device = "auto") -> "RunPredictor":
        raise NotImplementedError

    @classmethod
    def load(cls, source: str | os.PathLike[str], device: str | torch.device = "auto", **kwargs: Any) -> Any:
        """The predictor of a shipped model name, a model file or a run folder, on ``device``
        (``auto``: a CUDA GPU when there is one, else the CPU); ``kwargs`` go to ``from_run``.

        Raises:
            FileNotFoundError: no such model; ValueError: a model of another task, a bad device;
            ModelFileError (a ValueError): a file that cannot be used.
        """
        return cls.from_run(source, device=device, **kwargs)

    @contextlib.contextmanager
    def precision(self) -> Iterator[None]:
        """Inference mode, with bf16 autocast where the model's device has native bf16 (whatever
        the precision the recipe trained in)."""
        with torch.inference_mode(), autocast(self.device, self.run_precision):
            yield

    def features(self, waveform: Tensor, sample_rate: int) -> Tensor:
        """(samples,) mono waveform at ``sample_rate`` -> (frames, dim) features at the model's
        rate, on the CPU.

        Raises:
            ValueError: not a mono (samples,) waveform, or shorter than one frame.
        """
        if waveform.dim() != 1:
            raise ValueError(f"expected a mono (samples,) waveform, got shape {tuple(waveform.shape)}")
        if sample_rate != self.sample_rate:
            waveform = resample(waveform, sample_rate, self.sample_rate)
        with torch.inference_mode():
            feats, frames = self.extractor(waveform.float()[None])
        if int(frames[0]) == 0:
            raise ValueError("audio shorter than one frame")
        return feats[0, : int(frames[0])]
