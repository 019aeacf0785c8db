"""Masked mean + standard deviation pooling (statistics pooling, x-vector style)."""

from __future__ import annotations

import torch
from torch import Tensor

from speechattn.nn.pooling._masking import (
    check_positive_int,
    valid_frame_mask,
    weighted_mean_std,
)

__all__ = ["MeanStdPooling"]


class MeanStdPooling(torch.nn.Module):
    r"""Statistics pooling: mean and standard deviation over the valid frames.

    No parameters. The std is the biased (population) one, so a single valid frame gives
    ``sqrt(eps)`` rather than NaN; the variance is clamped at ``1e-5`` before ``sqrt``.
    Padded frames (``t >= lengths[b]``) are zeroed before any arithmetic, so their content
    (even NaN/inf) has no effect on the output or on gradients.

    Args:
        input_dim (int): feature size of the input frames.
    """

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        check_positive_int(input_dim, "input_dim")
        self.input_dim = input_dim

    @property
    def output_dim(self) -> int:
        """Size of the pooled vector: ``2 * input_dim`` (mean then std)."""
        return 2 * self.input_dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        r"""
        Args:
            x (Tensor): frames, shape `(batch, frames, input_dim)`.
            lengths (Tensor or None, optional): valid frames per utterance, shape `(batch,)`,
                integer, each in `[1, frames]`. ``None``: all frames valid. (Default: ``None``)

        Returns:
            Tensor: ``[mean, std]``, shape `(batch, 2 * input_dim)`.
        """
        mask = valid_frame_mask(x, lengths, self.input_dim).unsqueeze(-1)  # (B, T, 1)
        x = x.masked_fill(~mask, 0.0)
        weights = mask.to(x.dtype) / mask.sum(dim=1, keepdim=True).to(x.dtype)
        mean, std = weighted_mean_std(x, weights)
        return torch.cat([mean, std], dim=-1)

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}"
