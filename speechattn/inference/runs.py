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
import logging
import os
from dataclasses import dataclass
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
from speechattn.recipes import load_task_recipe
from speechattn.recipes.registry import same_task
from speechattn.utils.device import autocast, resolve_device, resolve_precision
from speechattn.utils.messages import one_line

__all__ = ["load_run_recipe", "load_run", "load_run_model", "RunModel", "ModelFileError", "model_device",
           "prepare_inference", "RunPredictor"]

log = logging.getLogger(__name__)


def load_run_recipe(run_dir: str | os.PathLike[str]) -> Any:
    """The resolved recipe saved in ``RUN_DIR/config.yaml``."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: not a speechattn run directory (no config.yaml)")
    return load_task_recipe(path)


@dataclass
class RunModel:
    """The trained model of a run, as :func:`load_run_model` read it.

    Attributes:
        recipe: the run's recipe (``config.yaml``).
        weights: the state dict (CPU tensors).
        info: the model's metadata (what ``model.json`` shows: classes, tokenizer, threshold...).
        weights_path: the file the weights came from (``model.safetensors``).
        info_path: the file the metadata came from: ``model.safetensors`` itself, or
            ``model.json`` for runs written before the metadata moved into it.
    """

    recipe: Any
    weights: dict[str, Tensor]
    info: dict[str, Any]
    weights_path: Path
    info_path: Path

    def load_into(self, module: torch.nn.Module) -> torch.nn.Module:
        """Load the weights into ``module`` (built from the recipe); a missing, unexpected or
        wrongly shaped tensor is a one-line :class:`ModelFileError` naming it and the file."""
        return load_weights_into(module, self.weights, self.weights_path)

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


def load_run_model(run_dir: str | os.PathLike[str], task: str, what: str, required: Sequence[str] = ()) -> RunModel:
    """The recipe, weights and metadata of a trained run of ``task``, with one-line errors.

    ``what`` names the model kind in the error for a run of another task; ``required``: the
    metadata entries the caller needs (missing ones are an error naming the file).

    Raises:
        FileNotFoundError: not a run folder, or no model yet.
        ValueError: a run of another task; :class:`ModelFileError` (a ValueError): corrupt
            weights or metadata, metadata of another task or missing a ``required`` entry.
    """
    run_dir = Path(run_dir)
    recipe = load_run_recipe(run_dir)
    if not same_task(recipe.task, task):  # an alias names the same task (old run folders)
        raise ValueError(f"{run_dir}: a {recipe.task!r} run, not a {what}")
    weights = run_dir / MODEL_FILE
    if not weights.exists():
        raise FileNotFoundError(f"{weights}: no trained weights (training has not reached its first evaluation)")
    tensors, info, info_path = load_model(run_dir)
    if not same_task(info.get("task", task), task):
        raise ModelFileError(f"{info_path}: metadata of a {info['task']!r} model, but the run is a {task!r} run")
    for key in required:
        if key not in info:
            raise ModelFileError(f"{info_path}: bad model metadata (no {key!r} entry)")
    return RunModel(recipe, tensors, info, weights, info_path)


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
    """What the predictors built from a run share.

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

    def __init__(self, recipe: Any, model: torch.nn.Module, what: str,
                 device: str | torch.device | None = None) -> None:
        self.recipe = recipe
        self.model, self.device, self.run_precision = prepare_inference(model, device, what)
        self.extractor = FeatureExtractor(recipe.features).eval()
        self.sample_rate = int(recipe.features.sample_rate)

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
