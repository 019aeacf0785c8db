"""Use a trained run from Python.

    from speechattn import SpeakerRecognizer
    model = SpeakerRecognizer.from_run("runs/speaker")   # device="auto": a CUDA GPU if any, else the CPU
    embedding = model.embed(waveform, sample_rate)        # (192,) tensor, on the CPU

Inference follows the hardware it runs on, not the precision the model was trained in: bf16
autocast where the device computes bf16 natively (see :mod:`speechattn.utils.device`), fp32 elsewhere.
Features are computed on the CPU; the model runs on its device; results come back to the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from speechattn.audio import (
    AudioError,
    AudioInfo,
    FeatureExtractor,
    StreamingFeatureExtractor,
    audio_info,
    iter_audio_blocks,
    load_audio,
    resample,
)
from speechattn.utils.device import autocast, resolve_device, resolve_precision
from speechattn.training.checkpoint import MODEL_FILE, ModelFileError, load_model, load_weights_into

__all__ = ["load_run_recipe", "load_run", "load_run_model", "RunModel", "ModelFileError", "model_device",
           "prepare_inference", "stream_file_outputs", "SpeakerRecognizer"]

log = logging.getLogger(__name__)


def load_run_recipe(run_dir: str | os.PathLike[str]) -> Any:
    """The resolved recipe saved in ``RUN_DIR/config.yaml``."""
    from speechattn.tasks import load_task_recipe

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
            detail = " ".join(str(exc).split()) or type(exc).__name__
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
    if recipe.task != task:
        raise ValueError(f"{run_dir}: a {recipe.task!r} run, not a {what}")
    weights = run_dir / MODEL_FILE
    if not weights.exists():
        raise FileNotFoundError(f"{weights}: no trained weights (training has not reached its first evaluation)")
    tensors, info, info_path = load_model(run_dir)
    if info.get("task", task) != task:
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


def stream_file_outputs(
    path: str | os.PathLike[str],
    extractor: FeatureExtractor,
    model: torch.nn.Module,
    convert: Callable[[Tensor], np.ndarray],
    *,
    block_seconds: float = 30.0,
    on_audio: Callable[[Tensor], None] | None = None,
    on_block: Callable[[float], None] | None = None,
    device: torch.device | None = None,
) -> tuple[np.ndarray, float]:
    """Run a ``cmvn -> encoder -> head`` model with ``stream()`` over an audio file of any length.

    The file is read ``block_seconds`` at a time (resampled to the extractor's rate), features
    are computed (on the CPU) by a :class:`~speechattn.audio.StreamingFeatureExtractor` and the
    model's stream, on ``device`` (default: where the model is), turns them into logits as soon as
    its look-ahead allows, so memory is bounded by a block plus what ``convert`` keeps: it maps
    each chunk's (frames', outputs) logits, brought back to the CPU, to a (frames', K) array, and
    the arrays are concatenated. Call under ``torch.inference_mode()``.

    Args:
        on_audio: called with every (samples,) block (e.g. a waveform envelope for plots).
        on_block: called with the seconds of each block read (progress).

    Returns:
        ((T', K) outputs, duration in seconds).

    Raises:
        AudioError: the file is missing, unreadable, empty or corrupt.
    """
    rate = int(extractor.config.sample_rate)
    device = model_device(model) if device is None else device
    features = StreamingFeatureExtractor(extractor)
    stream = model.stream()
    parts: list[np.ndarray] = []
    samples = 0
    pushed = False

    def run(feats: Tensor | None) -> None:
        nonlocal pushed
        if feats is None and not pushed:
            return  # no features at all (audio shorter than a frame): nothing to flush
        pushed = True
        logits = stream.push(feats[None].to(device)) if feats is not None else stream.flush()
        if logits.shape[1]:
            parts.append(convert(logits[0].cpu()))

    for block in iter_audio_blocks(path, rate, block_seconds):
        samples += block.numel()
        if on_audio is not None:
            on_audio(block)
        feats = features.push(block)
        if feats.shape[0]:
            run(feats)
        if on_block is not None:
            on_block(block.numel() / rate)
    feats = features.flush()
    if feats.shape[0]:
        run(feats)
    run(None)
    if not parts:
        return np.zeros((0, 0), dtype=np.float32), samples / rate
    return np.concatenate(parts), samples / rate


class SpeakerRecognizer:
    """A trained speaker model: waveform -> embedding, and cosine scoring.

    Args:
        recipe: the run's recipe (:class:`~speechattn.tasks.speaker.SpeakerRecipe`).
        embedder: the trained embedder (put in eval mode).
        threshold: same/different decision threshold on the cosine score (the dev EER point).
        device: where to run the embedder (moved there): ``auto``, ``cpu``, ``cuda``, ``cuda:N``;
            None: where it is. It runs in bf16 only where the device computes bf16 natively.

    Attributes:
        device: where the model runs (inputs are moved there, outputs come back to the CPU).
        run_precision: ``bf16`` where ``device`` computes bf16 natively, else ``fp32``.
    """

    def __init__(self, recipe: Any, embedder: torch.nn.Module, threshold: float,
                 device: str | torch.device | None = None) -> None:
        self.recipe = recipe
        self.embedder, self.device, self.run_precision = prepare_inference(embedder, device, "speaker model")
        self.threshold = float(threshold)
        self.extractor = FeatureExtractor(recipe.features).eval()
        self.sample_rate = recipe.features.sample_rate

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], device: str | torch.device = "auto") -> "SpeakerRecognizer":
        """Load ``RUN_DIR`` (config.yaml, model.safetensors) written by ``speechattn train``,
        onto ``device`` (``auto``: a CUDA GPU when there is one, else the CPU).

        Raises:
            ValueError: a bad device, a run of another task; ModelFileError (a ValueError): corrupt
            or mismatched weights or metadata; FileNotFoundError: not a trained run.
        """
        from speechattn.tasks.speaker import build_embedder

        dev = resolve_device(device)
        run = load_run_model(run_dir, "speaker", "speaker model", required=("threshold",))
        with run.reading_info():
            threshold = float(run.info["threshold"])
        embedder = run.load_into(build_embedder(run.recipe.model, run.recipe.features.feature_dim))
        return cls(run.recipe, embedder, threshold, device=dev)

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        """Inference mode, with bf16 autocast where the device has native bf16."""
        with torch.inference_mode(), autocast(self.device, self.run_precision):
            yield

    def features(self, waveform: Tensor, sample_rate: int) -> Tensor:
        """(samples,) mono waveform at ``sample_rate`` -> (frames, dim) features at the model rate."""
        if waveform.dim() != 1:
            raise ValueError(f"expected a mono (samples,) waveform, got shape {tuple(waveform.shape)}")
        if sample_rate != self.sample_rate:
            waveform = resample(waveform, sample_rate, self.sample_rate)
        with torch.inference_mode():
            feats, frames = self.extractor(waveform.float()[None])
        if int(frames[0]) == 0:
            raise ValueError("audio shorter than one frame")
        return feats[0, : int(frames[0])]

    def embed(self, waveform: Tensor, sample_rate: int) -> Tensor:
        """(samples,) waveform -> (embed_dim,) embedding."""
        return self.embed_features([self.features(waveform, sample_rate)])[0]

    def embed_features(self, feats: list[Tensor]) -> Tensor:
        """Utterance features (each (frames, dim), on the CPU) -> (N, embed_dim) float32 CPU embeddings,
        computed on the model's device."""
        from speechattn.tasks.speaker import embed_feature_list

        with self._precision():
            return embed_feature_list(self.embedder, feats, self.recipe.normalize, self.recipe.eval.batch_frames,
                                      device=self.device).float()

    #: Files up to this many seconds are embedded whole by :meth:`embed_file`; longer ones in
    #: windows of at most this length (bounded memory).
    window_seconds: float = 300.0

    def embed_file(self, path: str | os.PathLike[str], window_seconds: float | None = None) -> Tensor:
        """Embedding of an audio file (any format soundfile reads, any rate, mixed to mono), in
        memory bounded whatever the file's length.

        A file of up to ``window_seconds`` (default :attr:`window_seconds`: 5 minutes) is embedded
        whole, exactly as :meth:`embed` on its waveform. A longer file is read block by block and
        cut into equal windows of at most ``window_seconds``; each window is embedded as a
        recording of its own, and the embedding is the windows' mean direction (the mean of their
        unit vectors weighted by their lengths, normalised) scaled to their weighted mean norm.
        Memory then stays that of one window (5 minutes: 19 MB of samples at 16 kHz plus the
        features and activations), for a 4-hour file as for a 6-minute one; the result is close
        to a whole-file embedding (cosine ~0.9 or more), not equal to it.

        Raises:
            AudioError: the file is missing, unreadable, empty or corrupt, or shorter than one
                feature frame.
        """
        window = self.window_seconds if window_seconds is None else float(window_seconds)
        if not window > 0:  # float("inf"): every file whole
            raise ValueError(f"window_seconds must be positive, got {window!r}")
        info = audio_info(path)
        if info.duration <= window:
            waveform, rate = load_audio(path)
            try:
                return self.embed(waveform, rate)
            except ValueError as exc:  # audio shorter than one frame: say which file
                raise AudioError(f"{path}: {exc}") from None
        return self._embed_windows(path, info, window)

    def _embed_windows(self, path: str | os.PathLike[str], info: AudioInfo, window: float) -> Tensor:
        """The window-averaged embedding of a file longer than ``window`` seconds (see :meth:`embed_file`)."""
        rate = int(self.sample_rate)
        total = math.ceil(info.num_frames * rate / info.sample_rate)  # samples at the model rate
        size = math.ceil(total / math.ceil(total / (window * rate)))  # equal windows of <= window seconds
        pending: list[Tensor] = []
        held = 0
        direction: Tensor | None = None
        norm_sum = 0.0
        weight = 0

        def add(chunk: Tensor) -> None:
            nonlocal direction, norm_sum, weight
            try:
                emb = self.embed(chunk, rate)
            except ValueError:
                if weight:  # a remainder shorter than one frame after full windows: nothing to add
                    return
                raise
            norm = float(emb.norm())
            unit = emb / max(norm, 1e-12)
            direction = unit * chunk.numel() if direction is None else direction + unit * chunk.numel()
            norm_sum += norm * chunk.numel()
            weight += chunk.numel()

        for block in iter_audio_blocks(path, rate, block_seconds=min(30.0, window)):
            pending.append(block)
            held += block.numel()
            while held >= size:
                buf = torch.cat(pending)
                add(buf[:size])
                rest = buf[size:]
                pending, held = ([rest] if rest.numel() else []), rest.numel()
        if held:
            add(torch.cat(pending))
        assert direction is not None  # the file is longer than one window
        return direction / direction.norm().clamp(min=1e-12) * (norm_sum / weight)

    @staticmethod
    def score(a: Tensor, b: Tensor) -> float:
        """Cosine similarity of two embeddings."""
        return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1))

    def verify(self, a: Tensor, b: Tensor) -> tuple[float, bool]:
        """(score, same speaker?) for two embeddings, at the dev-calibrated threshold."""
        s = self.score(a, b)
        return s, s >= self.threshold
