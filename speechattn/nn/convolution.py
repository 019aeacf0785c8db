"""Conformer-style convolution module of an encoder block (streamable with either normalisation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CONV_NORMS", "ConvModule"]

CONV_NORMS = ("layer", "batch")


class ConvModule(nn.Module):
    """LayerNorm -> Linear(D, 2D) -> GLU -> depthwise Conv1d -> LayerNorm -> SiLU -> Linear -> Dropout.

    The depthwise convolution is centred (``kernel_size // 2`` frames on each side) and sees zeros
    beyond the sequence ends and at the padded frames of a batch (beyond ``lengths``), so an
    utterance gives the same outputs alone or inside a padded batch. The normalisation after the
    convolution is a LayerNorm (``norm="layer"``, per frame) or, as in the Conformer, a BatchNorm
    (``norm="batch"``): in training it normalises with the statistics of the batch's valid
    frames; in ``eval()`` mode it is a fixed per-channel affine map. Either way, at inference the
    outputs do not depend on the other utterances of the batch and the module streams exactly
    (see :mod:`speechattn.nn.streaming`). The residual connection is added by the caller.

    Args:
        d_model: model dimension D.
        kernel_size: odd kernel width K >= 3 (look-ahead and look-back of ``K // 2`` frames).
        dropout: dropout rate on the output.
        norm: ``"layer"`` or ``"batch"``, the normalisation after the convolution.
    """

    def __init__(self, d_model: int, kernel_size: int, dropout: float = 0.0, norm: str = "layer") -> None:
        super().__init__()
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 3, got {kernel_size!r}")
        if norm not in CONV_NORMS:
            raise ValueError(f"norm must be one of {list(CONV_NORMS)}, got {norm!r}")
        self.d_model = d_model
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, padding=0)
        self.conv_norm: nn.Module = nn.LayerNorm(d_model) if norm == "layer" else nn.BatchNorm1d(d_model)
        self.norm_kind = norm
        self.activation = nn.SiLU()
        self.pointwise_out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def gate(self, x: Tensor) -> Tensor:
        """Per-frame part before the convolution: (batch, time, D) -> GLU output (batch, time, D)."""
        return F.glu(self.pointwise_in(self.norm(x)), dim=-1)

    def mix(self, g: Tensor) -> Tensor:
        """Depthwise convolution without padding: (batch, time + K - 1, D) -> (batch, time, D)."""
        return self.depthwise(g.transpose(1, 2)).transpose(1, 2)

    def post(self, c: Tensor, valid: Tensor | None = None) -> Tensor:
        """Per-frame part after the convolution: (batch, time, D) -> (batch, time, D).

        ``valid`` (batch, time) bool: the frames whose statistics a training-mode BatchNorm uses
        (default: all)."""
        return self.dropout(self.pointwise_out(self.activation(self.normalize(c, valid))))

    def normalize(self, c: Tensor, valid: Tensor | None = None) -> Tensor:
        """The normalisation after the convolution, (batch, time, D) -> (batch, time, D)."""
        if self.norm_kind == "layer":
            return self.conv_norm(c)
        bn = self.conv_norm
        assert isinstance(bn, nn.BatchNorm1d)
        if not self.training or valid is None or bool(valid.all()):
            return bn(c.transpose(1, 2)).transpose(1, 2)
        # Batch statistics of the valid frames only (padding would change them).
        rows = bn(c[valid][:, :, None])[:, :, 0]
        return c.new_zeros(c.shape).index_put((valid,), rows.to(c.dtype))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: (batch, time, D), lengths: (batch,) valid frames or ``None`` -> (batch, time, D)."""
        g = self.gate(x)
        valid = None
        if lengths is not None:
            valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
            g = g.masked_fill(~valid[..., None], 0.0)
        g = F.pad(g, (0, 0, self.padding, self.padding))
        return self.post(self.mix(g), valid)
