"""Inputs of any length through a model's streaming computation, in bounded memory.

:func:`stream_file_outputs` is the file path of :class:`~speechattn.inference.Labeler` and
:class:`~speechattn.inference.Transcriber`: blocks of audio -> streaming features -> the model's
``stream()`` (exactly the offline outputs, see :mod:`speechattn.nn.streaming`) -> per-frame outputs.
:func:`offline_outputs` is their whole-waveform path: a long recording's features go through the
same streaming computation in large chunks, which gives the outputs of one forward pass with the
working memory of a chunk (``TruncatedEncoder.forward`` itself is a plain forward pass).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from speechattn.audio import (
    FeatureExtractor,
    StreamingFeatureExtractor,
    iter_audio_blocks,
)
from speechattn.inference.runs import model_device

__all__ = ["LONG_INPUT_FRAMES", "CHUNK_FRAMES", "offline_outputs", "stream_file_outputs"]

#: Whole inputs longer than this many feature frames (164 s at 10 ms) are run by
#: :func:`offline_outputs` as a stream of :data:`CHUNK_FRAMES`-frame chunks.
LONG_INPUT_FRAMES = 16384
CHUNK_FRAMES = 4096


def offline_outputs(model: torch.nn.Module, features: Tensor) -> Tensor:
    """Outputs of a ``(features, lengths) -> (outputs, lengths)`` model that can ``stream()``
    (the encoder, or a frame-head model) on one whole recording.

    Args:
        features: (1, frames, dim), on the model's device.

    Returns:
        (1, frames', K): ``model(features)``'s outputs, up to float rounding. Inputs longer than
        :data:`LONG_INPUT_FRAMES` frames run through ``model.stream()`` in chunks of
        :data:`CHUNK_FRAMES`: the same outputs, but the activations held at once are a chunk's, not
        the whole input's (1 hour of features through the 6 x 256 encoder of RESULTS.md: 3.0x less
        peak memory and 3.3x less time than one forward pass). Call in eval mode, without gradients.
    """
    if features.dim() != 3 or features.shape[0] != 1:
        raise ValueError(f"expected (1, frames, dim) features, got {tuple(features.shape)}")
    if features.shape[1] <= LONG_INPUT_FRAMES:
        outputs, lengths = model(features)
        return outputs[:, : int(lengths[0])]
    stream = model.stream()
    parts = [stream.push(features[:, i : i + CHUNK_FRAMES]) for i in range(0, features.shape[1], CHUNK_FRAMES)]
    parts.append(stream.flush())
    return torch.cat(parts, dim=1)


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
