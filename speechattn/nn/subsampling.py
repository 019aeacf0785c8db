"""Input projection with optional convolutional subsampling in time.

All convolutions are "valid" in time (no padding), so an output frame depends only on a fixed
span of input frames: output ``j`` uses inputs ``stride * j .. stride * j + receptive_field - 1``.
That makes the layer exactly streamable (see :mod:`speechattn.nn.streaming`) and makes padded
frames harmless: valid outputs never read padding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Subsampling"]


class Subsampling(nn.Module):
    """Projects features to ``d_model``, optionally subsampling time by 2 or 4.

    ``factor=1``: a linear layer. ``factor=2`` / ``4``: one / two Conv2d layers (kernel 3,
    stride 2 in time and frequency, ReLU) over the (time, feature) plane, then a linear layer.

    Args:
        input_dim: feature dimension F.
        d_model: output dimension.
        factor: 1, 2 or 4.
        channels: convolution channels (kept small: the convolution runs at the input rate).
    """

    def __init__(self, input_dim: int, d_model: int, factor: int = 1, channels: int = 64) -> None:
        super().__init__()
        if factor not in (1, 2, 4):
            raise ValueError(f"subsampling factor must be 1, 2 or 4, got {factor}")
        if input_dim < 1 or d_model < 1 or channels < 1:
            raise ValueError(f"input_dim, d_model and channels must be >= 1, got {input_dim}, {d_model}, {channels}")
        self.factor = factor
        self.input_dim = input_dim
        layers: list[nn.Module] = []
        freq = input_dim
        in_ch = 1
        for _ in range({1: 0, 2: 1, 4: 2}[factor]):
            if freq < 3:
                raise ValueError(f"input_dim {input_dim} is too small for subsampling by {factor}")
            layers += [nn.Conv2d(in_ch, channels, kernel_size=3, stride=2), nn.ReLU()]
            freq = (freq - 3) // 2 + 1
            in_ch = channels
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Linear(in_ch * freq if layers else input_dim, d_model)

    @property
    def receptive_field(self) -> int:
        """Input frames that one output frame depends on."""
        return {1: 1, 2: 3, 4: 7}[self.factor]

    @property
    def stride(self) -> int:
        """Input frames between consecutive output frames."""
        return self.factor

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(batch,) input frame counts -> (batch,) output frame counts (0 if too short)."""
        out = lengths
        for _ in range({1: 0, 2: 1, 4: 2}[self.factor]):
            out = torch.div(out - 3, 2, rounding_mode="floor") + 1
        return out.clamp(min=0)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """x: (batch, time, input_dim) -> ((batch, time', d_model), lengths' or None)."""
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"expected (batch, time, {self.input_dim}) features, got {tuple(x.shape)}")
        if self.factor > 1:
            if x.shape[1] < self.receptive_field:
                out_time = 0
                y = x.new_zeros(x.shape[0], out_time, self.proj.out_features)
                return y, None if lengths is None else self.output_lengths(lengths)
            h = self.conv(x.unsqueeze(1))  # (batch, channels, time', freq')
            b, c, t, f = h.shape
            x = h.transpose(1, 2).reshape(b, t, c * f)
        y = self.proj(x)
        return y, None if lengths is None else self.output_lengths(lengths)
