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

    def _convolve(self, x: Tensor) -> Tensor:
        """The Conv2d + ReLU stack, channels last: (batch, time, F) -> (batch, time', freq', channels),
        for training (used when autograd records).

        Same result as ``self.conv`` on ``x.unsqueeze(1)``, laid out differently: oneDNN's bf16
        kernels on the CPU are slow for the backward of a single-input-channel convolution and
        for any convolution whose input or output gradient is channels-first. So the first
        convolution is a matrix product of the 3 x 3 patches with its (channels, 9) weight, which
        comes out channels-last, and the second one runs on (and returns) channels-last tensors.
        """
        first = self.conv[0]
        assert isinstance(first, nn.Conv2d)
        patches = x.unfold(1, 3, 2).unfold(2, 3, 2)  # (batch, time', freq', 3 time, 3 freq)
        b, t, f = patches.shape[:3]
        weight = first.weight.reshape(first.out_channels, 9)
        h = self.conv[1](nn.functional.linear(patches.reshape(b, t, f, 9), weight, first.bias))  # ReLU
        if len(self.conv) > 2:
            h = h.permute(0, 3, 1, 2)  # (b, C, t', f') view of channels-last memory
            for layer in self.conv[2:]:
                h = layer(h)
            h = h.permute(0, 2, 3, 1)
        return h

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """x: (batch, time, input_dim) -> ((batch, time', d_model), lengths' or None)."""
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"expected (batch, time, {self.input_dim}) features, got {tuple(x.shape)}")
        out_lengths = None if lengths is None else self.output_lengths(lengths)
        if self.factor == 1:
            return self.proj(x), out_lengths
        if x.shape[1] < self.receptive_field:
            return x.new_zeros(x.shape[0], 0, self.proj.out_features), out_lengths
        if not torch.is_grad_enabled():
            # Inference: the plain stack. The channels-last path gains in the backward only, and
            # its fixed costs (weight reorder, patch copy) slow the small chunks of streaming.
            h = self.conv(x.unsqueeze(1))  # (batch, channels, time', freq')
            b, c, t, f = h.shape
            return self.proj(h.transpose(1, 2).reshape(b, t, c * f)), out_lengths
        h = self._convolve(x)  # (batch, time', freq', channels)
        b, t, f, c = h.shape
        # The projection's inputs are ordered (channel, freq), as from the channels-first
        # layout above: reorder its small weight, not the activations.
        weight = self.proj.weight.unflatten(1, (c, f)).transpose(1, 2).flatten(1)
        return nn.functional.linear(h.reshape(b, t, f * c), weight, self.proj.bias), out_lengths
