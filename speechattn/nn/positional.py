"""Positional encodings.

Every encoding takes an ``offset`` (absolute index of the first frame) so that a stream fed
chunk by chunk sees exactly the positions of the offline call.

- ``SinusoidalPositionalEncoding``: absolute, fixed, computed for any position (no length limit).
- ``LearnedPositionalEncoding``: absolute, one learned vector per position up to ``max_len``.
- ``RotaryEmbedding``: relative (RoPE), applied to queries and keys inside attention; the
  score of a query/key pair depends only on their distance, which suits windowed attention.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "POSITIONAL_KINDS",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEncoding",
    "RotaryEmbedding",
]

POSITIONAL_KINDS = ("rotary", "sinusoidal", "learned", "none")


def _sinusoid(positions: Tensor, dim: int, base: float) -> Tensor:
    """(time,) int positions -> (time, dim) sin/cos table (sin on even, cos on odd dims)."""
    half = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32)
    freq = torch.exp(-math.log(base) * half / dim)
    angles = positions.to(torch.float32)[:, None] * freq[None, :]
    table = torch.zeros(positions.shape[0], dim, device=positions.device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return table


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal encoding of Vaswani et al. (computed for any position).

    Args:
        dim: model dimension.
        base: wavelength base (10000 in the original).
    """

    def __init__(self, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even number >= 2, got {dim}")
        self.dim = dim
        self.base = base

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x: (batch, time, dim) -> (batch, time, dim)."""
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)
        return x + _sinusoid(positions, self.dim, self.base).to(x.dtype)[None]


class LearnedPositionalEncoding(nn.Module):
    """Adds a learned vector per absolute position ``0 .. max_len - 1``.

    Args:
        dim: model dimension.
        max_len: number of positions; longer inputs raise ``ValueError`` (use rotary or
            sinusoidal encodings for audio of unbounded length).
    """

    def __init__(self, dim: int, max_len: int = 4096) -> None:
        super().__init__()
        if dim < 1 or max_len < 1:
            raise ValueError(f"dim and max_len must be >= 1, got {dim}, {max_len}")
        self.max_len = max_len
        self.embedding = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x: (batch, time, dim) -> (batch, time, dim)."""
        end = offset + x.shape[1]
        if end > self.max_len:
            raise ValueError(
                f"learned positional encoding covers {self.max_len} frames, input reaches frame {end}; "
                "raise max_len or use positional='rotary' or 'sinusoidal'"
            )
        return x + self.embedding[offset:end].to(x.dtype)[None]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al., RoFormer) for (batch, heads, time, head_dim) tensors.

    Args:
        head_dim: per-head dimension (even).
        base: wavelength base.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim < 2 or head_dim % 2:
            raise ValueError(f"head_dim must be an even number >= 2 for rotary embeddings, got {head_dim}")
        self.head_dim = head_dim
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotate x: (..., time, head_dim) as positions ``offset .. offset + time - 1``.

        Each (even, odd) pair of dimensions is a complex number rotated by its position's angle.
        """
        time = x.shape[-2]
        positions = torch.arange(offset, offset + time, device=x.device, dtype=torch.float32)
        angles = positions[:, None] * self.inv_freq.to(x.device)[None, :]  # (time, head_dim/2)
        if x.dtype in (torch.float32, torch.float64):
            rot = torch.polar(torch.ones_like(angles), angles).to(torch.complex64 if x.dtype == torch.float32 else torch.complex128)
            pairs = torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous() if x.stride(-1) != 1 else x.unflatten(-1, (-1, 2)))
            return torch.view_as_real(pairs * rot).flatten(-2)
        # Low precision (bf16 autocast): x * cos + swap(x) * sin, with cos repeated per pair and
        # sin signed (-sin, +sin), where swap exchanges the two members of each pair:
        # (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin). Three passes instead of seven.
        cos = angles.cos().repeat_interleave(2, dim=-1).to(x.dtype)
        sin = torch.stack((-angles.sin(), angles.sin()), dim=-1).flatten(-2).to(x.dtype)
        swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
        return torch.addcmul(x * cos, swapped, sin)
