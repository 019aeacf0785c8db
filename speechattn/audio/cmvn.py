"""Cepstral mean and variance normalisation (per utterance, or global from corpus statistics).

All functions take padded batches `(batch, frames, dim)` with per-utterance frame counts; padded
frames are ignored by the statistics and stay exactly zero in the output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["CMVNStats", "GlobalCMVN", "utterance_cmvn"]

#: Floor on standard deviations (avoids blowing up constant dimensions).
STD_FLOOR = 1e-5


def _valid_mask(feats: Tensor, lengths: Tensor | None) -> Tensor:
    """`(batch, frames, 1)` float mask of valid frames."""
    batch, frames = feats.shape[0], feats.shape[1]
    if lengths is None:
        return torch.ones(batch, frames, 1, dtype=feats.dtype, device=feats.device)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    lengths = lengths.to(feats.device)
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > frames):
        raise ValueError(f"lengths must lie in [0, {frames}], got {lengths.tolist()}")
    mask = torch.arange(frames, device=feats.device)[None, :] < lengths[:, None]
    return mask[..., None].to(feats.dtype)


def utterance_cmvn(feats: Tensor, lengths: Tensor | None = None, norm_vars: bool = True) -> Tensor:
    """Normalise each utterance to zero mean (and unit variance) over its valid frames.

    Args:
        feats (Tensor): `(batch, frames, dim)`.
        lengths (Tensor or None): `(batch,)` valid frames per utterance (all if None).
        norm_vars (bool): Also divide by the standard deviation (floored at ``1e-5``).

    Returns:
        Tensor: `(batch, frames, dim)`, zero at padded frames (and for utterances with no frames).
    """
    if feats.dim() != 3:
        raise ValueError(f"feats must be (batch, frames, dim), got shape {tuple(feats.shape)}")
    mask = _valid_mask(feats, lengths)
    x = feats.to(torch.float64) if feats.dtype != torch.float64 else feats
    m = mask.to(x.dtype)
    count = m.sum(dim=1, keepdim=True).clamp_min(1.0)  # (batch, 1, 1)
    mean = (x * m).sum(dim=1, keepdim=True) / count
    centred = (x - mean) * m
    if norm_vars:
        var = centred.square().sum(dim=1, keepdim=True) / count
        centred = centred / var.sqrt().clamp_min(STD_FLOOR)
    return centred.to(feats.dtype)


class CMVNStats:
    """Running per-dimension count / sum / sum of squares (float64) for global CMVN.

    Args:
        dim (int or None): Feature dimension; inferred from the first :meth:`update` if None.

    Example
        >>> stats = CMVNStats()
        >>> for feats, frames in loader:
        ...     stats.update(feats, frames)
        >>> cmvn = GlobalCMVN.from_stats(stats)
    """

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and (int(dim) != dim or dim <= 0):
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = None if dim is None else int(dim)
        self.count = 0
        self.sum = None if dim is None else torch.zeros(self.dim, dtype=torch.float64)
        self.sum_sq = None if dim is None else torch.zeros(self.dim, dtype=torch.float64)

    def update(self, feats: Tensor, lengths: Tensor | None = None) -> "CMVNStats":
        """Accumulate frames.

        Args:
            feats (Tensor): `(frames, dim)`, or `(batch, frames, dim)` with ``lengths``.
            lengths (Tensor or None): `(batch,)` valid frames (3-D input only; all if None).

        Returns:
            CMVNStats: ``self``.
        """
        if feats.dim() == 2:
            if lengths is not None:
                raise ValueError("lengths is only meaningful with (batch, frames, dim) input")
            rows = feats.detach().to(device="cpu", dtype=torch.float64)
        elif feats.dim() == 3:
            mask = _valid_mask(feats, lengths)[..., 0].bool()
            rows = feats.detach()[mask].to(device="cpu", dtype=torch.float64)
        else:
            raise ValueError(f"feats must be (frames, dim) or (batch, frames, dim), got {tuple(feats.shape)}")
        if self.dim is None:
            self.dim = int(rows.shape[1])
            self.sum = torch.zeros(self.dim, dtype=torch.float64)
            self.sum_sq = torch.zeros(self.dim, dtype=torch.float64)
        if rows.shape[1] != self.dim:
            raise ValueError(f"feature dim {rows.shape[1]} does not match stats dim {self.dim}")
        if not bool(torch.isfinite(rows).all()):
            raise ValueError("feats contain NaN or infinite values")
        self.count += int(rows.shape[0])
        self.sum += rows.sum(dim=0)
        self.sum_sq += rows.square().sum(dim=0)
        return self

    def merge(self, other: "CMVNStats") -> "CMVNStats":
        """Add another accumulator's statistics (e.g. from another worker) into this one."""
        if other.dim is None:
            return self
        if self.dim is None:
            self.dim, self.sum, self.sum_sq = other.dim, other.sum.clone(), other.sum_sq.clone()
            self.count = other.count
            return self
        if other.dim != self.dim:
            raise ValueError(f"cannot merge stats of dim {other.dim} into dim {self.dim}")
        self.count += other.count
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        return self

    def _require(self) -> None:
        if self.count == 0 or self.sum is None:
            raise ValueError("CMVNStats is empty: call update() with at least one frame first")

    @property
    def mean(self) -> Tensor:
        """`(dim,)` float64 mean."""
        self._require()
        return self.sum / self.count

    @property
    def var(self) -> Tensor:
        """`(dim,)` float64 (biased) variance, clamped at 0."""
        mean = self.mean
        return (self.sum_sq / self.count - mean.square()).clamp_min(0.0)

    @property
    def std(self) -> Tensor:
        """`(dim,)` float64 standard deviation, floored at ``1e-5``."""
        return self.var.sqrt().clamp_min(STD_FLOOR)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-friendly ``{"dim", "count", "sum", "sum_sq"}``."""
        return {
            "dim": self.dim,
            "count": self.count,
            "sum": [] if self.sum is None else self.sum.tolist(),
            "sum_sq": [] if self.sum_sq is None else self.sum_sq.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CMVNStats":
        """Inverse of :meth:`to_dict`."""
        try:
            dim, count, total, total_sq = data["dim"], data["count"], data["sum"], data["sum_sq"]
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a CMVNStats dict (needs dim, count, sum, sum_sq): {err}") from err
        stats = cls(dim)
        if dim is None:
            if count or total or total_sq:
                raise ValueError("CMVNStats dict without dim must be empty")
            return stats
        if len(total) != dim or len(total_sq) != dim:
            raise ValueError(f"sum/sum_sq must have {dim} values, got {len(total)}/{len(total_sq)}")
        if int(count) != count or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        stats.count = int(count)
        stats.sum = torch.tensor(total, dtype=torch.float64)
        stats.sum_sq = torch.tensor(total_sq, dtype=torch.float64)
        return stats

    def __repr__(self) -> str:
        return f"CMVNStats(dim={self.dim}, count={self.count})"


class GlobalCMVN(torch.nn.Module):
    """Normalise features with fixed (corpus) mean and std; frame-local, so streaming-safe.

    ``mean`` and ``std`` are registered buffers, so they travel with the model's ``state_dict``.

    Args:
        dim (int): Feature dimension (identity transform until loaded / built from stats).
        mean (Tensor or None): `(dim,)`.
        std (Tensor or None): `(dim,)`, positive.
        norm_vars (bool): Divide by ``std`` (otherwise only subtract ``mean``).
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self, dim: int, mean: Tensor | None = None, std: Tensor | None = None, norm_vars: bool = True
    ) -> None:
        super().__init__()
        if int(dim) != dim or dim <= 0:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        mean = torch.zeros(dim) if mean is None else torch.as_tensor(mean).detach()
        std = torch.ones(dim) if std is None else torch.as_tensor(std).detach()
        if mean.shape != (dim,) or std.shape != (dim,):
            raise ValueError(f"mean and std must have shape ({dim},), got {tuple(mean.shape)}, {tuple(std.shape)}")
        if not bool(torch.isfinite(mean).all()) or not bool(torch.isfinite(std).all()) or not bool((std > 0).all()):
            raise ValueError("mean must be finite and std finite and positive")
        self.norm_vars = norm_vars
        self.register_buffer("mean", mean.to(torch.float32).clone())
        self.register_buffer("std", std.to(torch.float32).clone())

    @classmethod
    def from_stats(cls, stats: CMVNStats, norm_vars: bool = True) -> "GlobalCMVN":
        """Build from accumulated :class:`CMVNStats`."""
        mean = stats.mean
        return cls(int(mean.numel()), mean, stats.std, norm_vars=norm_vars)

    def forward(self, feats: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Normalise.

        Args:
            feats (Tensor): `(..., dim)`; with ``lengths``, `(batch, frames, dim)`.
            lengths (Tensor or None): `(batch,)` valid frames; padded frames are returned as zero.

        Returns:
            Tensor: Same shape and dtype as ``feats``.
        """
        if feats.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"feats last dim {feats.shape[-1]} != CMVN dim {self.mean.shape[0]}")
        out = feats - self.mean.to(feats.dtype)
        if self.norm_vars:
            out = out / self.std.to(feats.dtype)
        if lengths is not None:
            if feats.dim() != 3:
                raise ValueError(f"with lengths, feats must be (batch, frames, dim), got {tuple(feats.shape)}")
            out = out * _valid_mask(feats, lengths)
        return out

    def extra_repr(self) -> str:
        return f"dim={self.mean.shape[0]}, norm_vars={self.norm_vars}"
