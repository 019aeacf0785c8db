"""Use a trained frame-labeling run from Python.

    from speechattn.inference import Labeler
    labeler = Labeler.from_run("runs/vad")
    result = labeler.label_file("meeting.flac")        # any length: streamed, bounded memory
    for seg in result.segments:
        print(seg.start, seg.end, seg.label)

:meth:`Labeler.label_file` reads the file block by block (:func:`~speechattn.audio.iter_audio_blocks`),
computes features with :class:`~speechattn.audio.StreamingFeatureExtractor` and runs the
model's streaming encoder, so memory stays bounded by the block size plus the per-frame
posteriors (K floats every output frame, e.g. 4 bytes every 40 ms for voice activity: 0.36 MB
per hour). :meth:`Labeler.label_waveform` is the offline path on a whole waveform; both give the
same posteriors up to float rounding.

The model runs on the device given to :meth:`Labeler.from_run` (``auto``: a CUDA GPU when there is
one, else the CPU), in bf16 only where that device computes bf16 natively, whatever the precision
it was trained in (see :mod:`speechattn.utils.device`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from speechattn.audio import audio_info
from speechattn.data.labels import FrameGrid, Segment
from speechattn.decoding.segments import decode
from speechattn.inference.runs import RunPredictor, load_run_model
from speechattn.inference.streaming import offline_outputs, stream_file_outputs
from speechattn.models.labeler import FrameLabeler
from speechattn.recipes.builders import build_labeler
from speechattn.utils.device import resolve_device

__all__ = ["LabelResult", "Labeler", "plot_labels"]


@dataclass
class LabelResult:
    """Labels of one recording.

    Attributes:
        path: the audio file ("" for a waveform).
        duration: seconds of audio.
        segments: post-processed segments, sorted by start.
        posteriors: (T', K) float32 class posteriors at the model's frame rate.
        grid: times of the posterior frames.
        classes: the K class names.
        envelope: (P, 2) min / max of the waveform over P equal buckets (for plots), or None.
    """

    path: str
    duration: float
    segments: list[Segment]
    posteriors: np.ndarray
    grid: FrameGrid
    classes: list[str]
    envelope: np.ndarray | None = None


class _Envelope:
    """Streaming min/max of a waveform over buckets of ``size`` samples."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.rest = np.zeros(0, dtype=np.float32)
        self.parts: list[np.ndarray] = []

    def push(self, x: np.ndarray) -> None:
        buf = np.concatenate([self.rest, x]) if self.rest.size else x
        full = buf.shape[0] // self.size * self.size
        if full:
            view = buf[:full].reshape(-1, self.size)
            self.parts.append(np.stack([view.min(1), view.max(1)], axis=1))
        self.rest = buf[full:].copy()

    def result(self) -> np.ndarray:
        if self.rest.size:
            self.parts.append(np.array([[self.rest.min(), self.rest.max()]], dtype=np.float32))
            self.rest = np.zeros(0, dtype=np.float32)
        return np.concatenate(self.parts) if self.parts else np.zeros((0, 2), dtype=np.float32)


class Labeler(RunPredictor):
    """A trained frame labeler: audio -> posteriors -> segments.

    Args:
        recipe: the run's :class:`~speechattn.recipes.labeling.LabelRecipe`.
        model: the trained :class:`FrameLabeler` (put in eval mode).
        classes: class names in model order.
        grid: times of the model's output frames.
        block_seconds: audio read per block when streaming a file.
        device: where to run the model (moved there): ``auto``, ``cpu``, ``cuda``, ``cuda:N``;
            None: where it is.

    Attributes: those of :class:`~speechattn.inference.runs.RunPredictor`, and the arguments.
    """

    def __init__(self, recipe: Any, model: FrameLabeler, classes: list[str], grid: FrameGrid,
                 block_seconds: float = 30.0, device: str | torch.device | None = None) -> None:
        super().__init__(recipe, model, "frame labeler", device)
        self.classes = list(classes)
        self.grid = grid
        self.block_seconds = block_seconds
        self.postprocess = recipe.postprocess

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], device: str | torch.device = "auto") -> "Labeler":
        """Load a frame-labeling model: a shipped model name (``vad``), a model file or a run folder
        (``config.yaml``, ``model.safetensors``), onto ``device`` (``auto``: a CUDA GPU when there
        is one, else the CPU).

        Raises:
            ValueError: a bad device, a run of another task; ModelFileError (a ValueError): corrupt
            or mismatched weights or metadata; FileNotFoundError: not a trained run.
        """
        dev = resolve_device(device)
        run = load_run_model(run_dir, "labeling", "frame-labeling model", required=("classes", "grid"))
        with run.reading_info():
            if not isinstance(run.info["classes"], list) or not run.info["classes"]:
                raise ValueError(f"'classes' is {run.info['classes']!r}, not a list of class names")
            classes = [str(c) for c in run.info["classes"]]
            grid = FrameGrid.from_dict(run.info["grid"])
        model = run.load_into(build_labeler(run.recipe, len(classes)))
        labeler = cls(run.recipe, model, classes, grid, device=dev)
        labeler.card = run.card
        return labeler

    def segments(self, posteriors: np.ndarray, duration: float | None = None) -> list[Segment]:
        """Post-processed segments of (T', K) posteriors (the recipe's ``postprocess``)."""
        return decode(posteriors, self.classes, self.grid, self.postprocess, duration)

    # ----------------------------------------------------------------- offline
    def label_waveform(self, waveform: Tensor, sample_rate: int) -> LabelResult:
        """Label a whole (samples,) mono waveform at once (offline path).

        Raises:
            ValueError: not a mono (samples,) waveform, or shorter than one frame.
        """
        feats = self.features(waveform, sample_rate)
        with self.precision():
            logits = offline_outputs(self.model, feats[None].to(self.device))
            post = self.model.posteriors(logits)[0].cpu().numpy()
        duration = waveform.numel() / sample_rate
        return LabelResult("", duration, self.segments(post, duration), post, self.grid, self.classes)

    # ----------------------------------------------------------------- streaming
    def stream_posteriors(
        self,
        path: str | os.PathLike[str],
        *,
        envelope_points: int = 0,
        on_block: Callable[[float], None] | None = None,
    ) -> tuple[np.ndarray, float, np.ndarray | None]:
        """(T', K) posteriors, duration in seconds and the optional (P, 2) waveform envelope of a
        file, streamed block by block. ``on_block(seconds)`` is called after each block (progress)."""
        envelope = None
        if envelope_points > 0:
            info = audio_info(path)
            expected = math.ceil(info.num_frames * self.sample_rate / info.sample_rate)
            envelope = _Envelope(expected // envelope_points)
        with self.precision():
            post, duration = stream_file_outputs(
                path, self.extractor, self.model, lambda logits: self.model.posteriors(logits).numpy(),
                block_seconds=self.block_seconds, on_block=on_block, device=self.device,
                on_audio=None if envelope is None else (lambda block: envelope.push(block.numpy())))
        if post.shape[0] == 0:
            post = np.zeros((0, len(self.classes)), dtype=np.float32)
        return post, duration, None if envelope is None else envelope.result()

    def label_file(
        self,
        path: str | os.PathLike[str],
        *,
        envelope_points: int = 0,
        on_block: Callable[[float], None] | None = None,
    ) -> LabelResult:
        """Label an audio file of any length through the streaming path (see the module docstring).

        Raises:
            AudioError: the file is missing, unreadable, empty or corrupt.
        """
        post, duration, envelope = self.stream_posteriors(path, envelope_points=envelope_points, on_block=on_block)
        return LabelResult(str(path), duration, self.segments(post, duration), post, self.grid, self.classes, envelope)


def plot_labels(
    path: str | os.PathLike[str],
    result: LabelResult,
    reference: list[Segment] | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG: waveform envelope (or nothing if the result has none), class posteriors, the
    segments of each class and, if given, reference segments below them.

    Needs matplotlib (``pip install 'speechattn[train]'``; else
    :class:`~speechattn.utils.extras.MissingExtraError`)."""
    from speechattn.utils.extras import require

    matplotlib = require("matplotlib", "plot_labels")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 2 + (reference is not None)
    fig, axes = plt.subplots(rows, 1, figsize=(14, 1.6 + 1.3 * rows), sharex=True,
                             gridspec_kw={"height_ratios": [2, 1.4] + [0.8] * (rows - 2)})
    ax_wave, ax_post = axes[0], axes[1]
    colours = plt.get_cmap("tab10")
    env = result.envelope
    if env is not None and env.shape[0]:
        t = np.linspace(0.0, result.duration, env.shape[0], endpoint=False)
        ax_wave.fill_between(t, env[:, 0], env[:, 1], color="0.45", linewidth=0, step="post")
    for k, name in enumerate(result.classes):
        colour = colours(k % 10)
        for s in result.segments:
            if s.label == name:
                ax_wave.axvspan(s.start, s.end, color=colour, alpha=0.18, linewidth=0)
        ax_post.plot(result.grid.centres(result.posteriors.shape[0]), result.posteriors[:, k], color=colour,
                     linewidth=0.8, label=name)
    ax_wave.set_ylabel("waveform")
    ax_post.set_ylim(-0.02, 1.02)
    ax_post.set_ylabel("posterior")
    ax_post.legend(loc="upper right", fontsize=7, ncol=min(4, len(result.classes)))
    if reference is not None:
        ax_ref = axes[2]
        for k, name in enumerate(result.classes):
            for s in reference:
                if s.label == name:
                    ax_ref.axvspan(s.start, s.end, ymin=0.1, ymax=0.9, color=colours(k % 10), alpha=0.6, linewidth=0)
        ax_ref.set_yticks([])
        ax_ref.set_ylabel("reference")
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0.0, max(result.duration, 1e-3))
    fig.suptitle(title or (Path(result.path).name if result.path else "labels"), fontsize=10)
    fig.tight_layout()
    from speechattn.utils.files import atomic_write

    out = Path(path)
    try:  # atomically: an error mid-write leaves no half-written PNG
        atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    finally:
        plt.close(fig)
    return out
