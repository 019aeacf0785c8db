"""Use a trained speaker run from Python.

    from speechattn import SpeakerRecognizer
    model = SpeakerRecognizer.from_run("runs/speaker")   # device="auto": a CUDA GPU if any, else the CPU
    embedding = model.embed(waveform, sample_rate)        # (192,) tensor, on the CPU
    score, same = model.verify(embedding, model.embed_file("other.flac"))
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import Tensor

from speechattn.audio import (
    AudioError,
    AudioInfo,
    audio_info,
    iter_audio_blocks,
    load_audio,
)
from speechattn.inference.runs import RunPredictor, load_run_model
from speechattn.models.speaker import embed_feature_list
from speechattn.recipes.builders import build_embedder
from speechattn.utils.device import resolve_device

__all__ = ["SpeakerRecognizer"]


class SpeakerRecognizer(RunPredictor):
    """A trained speaker model: waveform -> embedding, and cosine scoring.

    Args:
        recipe: the run's recipe (:class:`~speechattn.recipes.speaker.SpeakerRecipe`).
        embedder: the trained embedder (put in eval mode).
        threshold: same/different decision threshold on the cosine score (the dev EER point).
        device: where to run the embedder (moved there): ``auto``, ``cpu``, ``cuda``, ``cuda:N``;
            None: where it is. It runs in bf16 only where the device computes bf16 natively.

    Attributes: those of :class:`~speechattn.inference.runs.RunPredictor`, and ``embedder``
    (the model) and ``threshold``.
    """

    def __init__(self, recipe: Any, embedder: torch.nn.Module, threshold: float,
                 device: str | torch.device | None = None) -> None:
        super().__init__(recipe, embedder, "speaker model", device)
        self.threshold = float(threshold)

    @property
    def embedder(self) -> torch.nn.Module:
        """The embedding model (:attr:`model`)."""
        return self.model

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], device: str | torch.device = "auto") -> "SpeakerRecognizer":
        """Load a speaker model: a shipped model name (``speaker``), a model file or a run folder
        (``config.yaml``, ``model.safetensors``) written by ``speechattn train``, onto ``device``
        (``auto``: a CUDA GPU when there is one, else the CPU).

        Raises:
            ValueError: a bad device, a run of another task; ModelFileError (a ValueError): corrupt
            or mismatched weights or metadata; FileNotFoundError: not a trained run.
        """
        dev = resolve_device(device)
        run = load_run_model(run_dir, "speaker", "speaker model", required=("threshold",))
        with run.reading_info():
            threshold = float(run.info["threshold"])
        embedder = run.load_into(build_embedder(run.recipe.model, run.recipe.features.feature_dim))
        recognizer = cls(run.recipe, embedder, threshold, device=dev)
        recognizer.card = run.card
        return recognizer

    def embed(self, waveform: Tensor, sample_rate: int) -> Tensor:
        """(samples,) waveform -> (embed_dim,) embedding."""
        return self.embed_features([self.features(waveform, sample_rate)])[0]

    def embed_features(self, feats: list[Tensor]) -> Tensor:
        """Utterance features (each (frames, dim), on the CPU) -> (N, embed_dim) float32 CPU embeddings,
        computed on the model's device."""
        with self.precision():
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
