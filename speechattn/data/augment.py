"""Training augmentation on log-mel features: random crops, real-noise mixing, SpecAugment.

Noise is mixed in the mel-power domain: ``log(exp(S) + g * exp(N))`` with ``g`` chosen for the
drawn SNR. Filterbank energies of a sum of independent signals are, up to the cross term that
averages out within a mel band, the sum of their energies, so this matches mixing waveforms
closely while costing no feature extraction per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["AugmentConfig", "random_crop", "random_crops", "mix_noise", "spec_augment"]


@dataclass
class AugmentConfig:
    """The ``augment`` block of a recipe."""

    noise_prob: float = 0.6
    snr_min: float = 0.0
    snr_max: float = 20.0
    time_masks: int = 2
    time_mask_width: int = 10
    freq_masks: int = 2
    freq_mask_width: int = 8

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ValueError(f"noise_prob must be in [0, 1], got {self.noise_prob}")
        if self.snr_min > self.snr_max:
            raise ValueError(f"snr_min ({self.snr_min}) must be <= snr_max ({self.snr_max})")
        for name in ("time_masks", "time_mask_width", "freq_masks", "freq_mask_width"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def random_crop(feats: Tensor, frames: int, generator: torch.Generator) -> Tensor:
    """One random (frames, dim) crop of (length, dim) features; an utterance shorter than
    ``frames`` is repeated end to end first. Draws one integer from ``generator``."""
    if feats.shape[0] < frames:
        feats = feats.repeat(frames // feats.shape[0] + 1, 1)
    start = int(torch.randint(0, feats.shape[0] - frames + 1, (1,), generator=generator))
    return feats[start : start + frames]


def random_crops(feats: list[Tensor], indices: list[int], frames: int, generator: torch.Generator) -> Tensor:
    """(batch, frames, dim) random crops (:func:`random_crop` of each ``feats[i]``, in order)."""
    return torch.stack([random_crop(feats[i], frames, generator) for i in indices])


def mix_noise(
    logmel: Tensor, noise_logmel: Tensor, snr_db: Tensor, apply: Tensor | None = None
) -> Tensor:
    """Mix noise into log-mel features at the given SNRs.

    Args:
        logmel: (batch, frames, dim) log-mel energies of speech.
        noise_logmel: (batch, frames, dim) log-mel energies of noise.
        snr_db: (batch,) signal-to-noise ratios in dB.
        apply: (batch,) bool, rows to mix (others are returned unchanged).
    """
    speech = logmel.exp()
    noise = noise_logmel.exp()
    gain = speech.sum(dim=(1, 2)) / noise.sum(dim=(1, 2)).clamp(min=1e-10) / (10.0 ** (snr_db / 10.0))
    mixed = torch.log(speech + gain[:, None, None] * noise)
    if apply is None:
        return mixed
    return torch.where(apply[:, None, None], mixed, logmel)


def spec_augment(x: Tensor, config: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Zero random time and frequency bands of (batch, frames, dim) normalised features."""
    batch, frames, dim = x.shape
    x = x.clone()
    for count, width, size, axis in (
        (config.time_masks, config.time_mask_width, frames, 1),
        (config.freq_masks, config.freq_mask_width, dim, 2),
    ):
        if count == 0 or width == 0:
            continue
        w = torch.randint(0, width + 1, (batch, count), generator=generator)
        start = (torch.rand(batch, count, generator=generator) * (size - w).clamp(min=0)).long()
        pos = torch.arange(size)
        masked = ((pos[None, None] >= start[..., None]) & (pos[None, None] < (start + w)[..., None])).any(1)
        if axis == 1:
            x.masked_fill_(masked[:, :, None], 0.0)
        else:
            x.masked_fill_(masked[:, None, :], 0.0)
    return x


def spec_augment_on(x: Tensor, config: AugmentConfig, generator: torch.Generator) -> Tensor:
    """:func:`~speechattn.data.augment.spec_augment` of features on any device: the masks are drawn
    on the CPU from ``generator`` (the same draws as for CPU features) and applied where ``x`` is."""
    if x.device.type == "cpu":
        return spec_augment(x, config, generator)
    keep = spec_augment(torch.ones(x.shape, dtype=torch.bool), config, generator)
    return x.masked_fill(~keep.to(x.device, non_blocking=True), 0.0)
