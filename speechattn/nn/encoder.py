"""The truncated self-attention encoder.

features -> [subsampling] -> positional encoding -> N x [pre-LN truncated MHSA
(+ optional convolution module) + feed-forward] -> LayerNorm. Each layer has its own left/right
context, so the total look-ahead is the sum of the layers' right contexts (plus ``conv_kernel // 2``
per layer with a convolution module), times the subsampling factor, plus the subsampling
convolution's span.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from speechattn.nn.convolution import CONV_NORMS
from speechattn.nn.layers import (
    EncoderLayer,
    check_activation,
    double_rate,
    halve_rate,
)
from speechattn.nn.masks import frame_mask
from speechattn.nn.positional import (
    POSITIONAL_KINDS,
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
)
from speechattn.nn.streaming import EncoderStream
from speechattn.nn.subsampling import Subsampling

__all__ = ["EncoderConfig", "TruncatedEncoder"]


@dataclass
class EncoderConfig:
    """Hyper-parameters of :class:`TruncatedEncoder` (the ``model.encoder`` block of a recipe).

    ``left_context`` / ``right_context`` are one value for every layer or a list with one
    value per layer; ``None`` means unlimited (full attention on that side).

    ``conv_kernel`` adds a Conformer-style convolution module (:class:`ConvModule`, depthwise
    kernel of that odd width >= 3) between the attention and the feed-forward of every layer;
    ``0`` (the default) means no convolution module. Each convolution module adds
    ``conv_kernel // 2`` frames (after subsampling) of look-ahead to streaming.

    ``macaron`` adds a feed-forward module before the attention of every layer and halves both
    feed-forward residuals; ``block_norm`` ends every layer with a LayerNorm (both as in the
    Conformer block; with ``conv_kernel`` the layer is a Conformer block with truncated attention).

    ``time_reduce_at`` / ``time_recover_at`` (both or neither) run layers ``time_reduce_at ..
    time_recover_at - 1`` at half the frame rate, as in Squeezeformer: fewer frames for the
    middle layers, whose contexts and convolution spans then count frames twice as long.

    ``residual_init_scale`` multiplies, at initialisation only, the weights of the last Linear of
    every residual branch (the attention's output projection, the convolution module's last
    pointwise Linear and the feed-forwards' second Linear): each block then starts closer to the
    identity. ``1.0`` (the default) keeps PyTorch's initialisation. It does not change the
    computation, so saved models load whatever its value.
    """

    input_dim: int = 80
    d_model: int = 256
    num_heads: int = 4
    num_layers: int = 6
    ffn_dim: int = 1024
    left_context: int | None | list[int | None] = 32
    right_context: int | None | list[int | None] = 8
    subsampling: int = 1
    subsampling_channels: int = 64
    positional: str = "rotary"
    max_len: int = 4096
    dropout: float = 0.1
    activation: str = "gelu"
    conv_kernel: int = 0
    conv_norm: str = "layer"
    macaron: bool = False
    block_norm: bool = False
    time_reduce_at: int | None = None
    time_recover_at: int | None = None
    residual_init_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("input_dim", "d_model", "num_heads", "num_layers", "ffn_dim", "subsampling_channels", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if self.subsampling not in (1, 2, 4):
            raise ValueError(f"subsampling must be 1, 2 or 4, got {self.subsampling}")
        if self.positional not in POSITIONAL_KINDS:
            raise ValueError(f"positional must be one of {list(POSITIONAL_KINDS)}, got {self.positional!r}")
        check_activation(self.activation)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        k = self.conv_kernel
        if isinstance(k, bool) or not isinstance(k, int) or (k != 0 and (k < 3 or k % 2 == 0)):
            raise ValueError(f"conv_kernel must be 0 (no convolution) or an odd integer >= 3, got {k!r}")
        if self.conv_norm not in CONV_NORMS:
            raise ValueError(f"conv_norm must be one of {list(CONV_NORMS)}, got {self.conv_norm!r}")
        for name in ("macaron", "block_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        scale = self.residual_init_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 < scale < float("inf"):
            raise ValueError(f"residual_init_scale must be a positive number, got {scale!r}")
        self.layer_contexts()  # validates the per-layer lists
        self.half_rate_layers()  # validates the time reduction

    def half_rate_layers(self) -> range:
        """Indices of the layers that run at half the frame rate (empty without time reduction)."""
        start, stop = self.time_reduce_at, self.time_recover_at
        if start is None and stop is None:
            return range(0)
        for name, v in (("time_reduce_at", start), ("time_recover_at", stop)):
            if v is None or isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(
                    f"time_reduce_at and time_recover_at must both be layer indices, got {name}={v!r}"
                )
        assert start is not None and stop is not None
        if not 0 <= start < stop <= self.num_layers:
            raise ValueError(
                f"time reduction needs 0 <= time_reduce_at < time_recover_at <= num_layers ({self.num_layers}), "
                f"got {start} and {stop}"
            )
        return range(start, stop)

    def layer_contexts(self) -> list[tuple[int | None, int | None]]:
        """(left, right) of each layer."""
        out = []
        for name in ("left_context", "right_context"):
            value = getattr(self, name)
            values = list(value) if isinstance(value, (list, tuple)) else [value] * self.num_layers
            if len(values) != self.num_layers:
                raise ValueError(f"{name} has {len(values)} values for {self.num_layers} layers")
            for v in values:
                if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                    raise ValueError(f"{name} values must be non-negative ints or None, got {v!r}")
            out.append(values)
        return list(zip(out[0], out[1]))


class TruncatedEncoder(nn.Module):
    """Truncated multi-head self-attention encoder: ``(features, lengths) -> (output, output_lengths)``.

    Args:
        input_dim: feature dimension F.
        d_model: model dimension D.
        num_heads: attention heads.
        num_layers: number of blocks.
        ffn_dim: hidden size of the feed-forward networks.
        left_context: past frames each frame attends to (int, None, or one per layer).
        right_context: future frames each frame attends to (int, None, or one per layer).
        subsampling: time subsampling factor of the input projection (1, 2 or 4).
        subsampling_channels: Conv2d channels of the subsampling.
        positional: ``"rotary"`` (relative, default), ``"sinusoidal"``, ``"learned"`` or ``"none"``.
        max_len: positions of the ``"learned"`` encoding.
        dropout: dropout rate.
        activation: feed-forward activation (``"gelu"``, ``"relu"``, ``"silu"``, or the gated
            ``"swiglu"``, whose first linear layer is ``2 * ffn_dim`` wide).
        conv_kernel: width of the depthwise kernel of a Conformer-style convolution module in
            every layer (odd, >= 3); ``0`` (default) for none. Adds ``conv_kernel // 2`` frames
            of look-ahead per layer (times the subsampling factor).
        conv_norm: normalisation inside the convolution module, ``"layer"`` (default) or
            ``"batch"`` (as in the Conformer; a per-channel affine map at inference).
        macaron: a second feed-forward module before the attention of every layer, both halved.
        block_norm: a LayerNorm at the end of every layer.
        time_reduce_at / time_recover_at: layers ``time_reduce_at .. time_recover_at - 1`` run at
            half the frame rate (as in Squeezeformer): the input of layer ``time_reduce_at`` is
            averaged over pairs of frames (a zero frame completes an odd count), and before layer
            ``time_recover_at`` (or the final LayerNorm) each half-rate frame is repeated twice
            and added to the full-rate input of the reduction. Their contexts count half-rate
            frames. ``None`` (default): every layer at the full rate.
        residual_init_scale: factor on the initial weights of the last Linear of every residual
            branch (attention output, convolution module output, feed-forwards' second Linear);
            ``1.0`` (default): PyTorch's initialisation. Initialisation only.

    Cost and memory are linear in the number of frames when every layer's contexts are finite.
    """

    def __init__(
        self,
        input_dim: int = 80,
        d_model: int = 256,
        num_heads: int = 4,
        num_layers: int = 6,
        ffn_dim: int = 1024,
        left_context: int | None | list[int | None] = 32,
        right_context: int | None | list[int | None] = 8,
        subsampling: int = 1,
        subsampling_channels: int = 64,
        positional: str = "rotary",
        max_len: int = 4096,
        dropout: float = 0.1,
        activation: str = "gelu",
        conv_kernel: int = 0,
        conv_norm: str = "layer",
        macaron: bool = False,
        block_norm: bool = False,
        time_reduce_at: int | None = None,
        time_recover_at: int | None = None,
        residual_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.config = EncoderConfig(
            input_dim=input_dim, d_model=d_model, num_heads=num_heads, num_layers=num_layers, ffn_dim=ffn_dim,
            left_context=left_context, right_context=right_context, subsampling=subsampling,
            subsampling_channels=subsampling_channels, positional=positional, max_len=max_len,
            dropout=dropout, activation=activation, conv_kernel=conv_kernel, conv_norm=conv_norm,
            macaron=macaron, block_norm=block_norm, time_reduce_at=time_reduce_at, time_recover_at=time_recover_at,
            residual_init_scale=residual_init_scale,
        )
        self.half_rate = self.config.half_rate_layers()
        self.input_dim = input_dim
        self.d_model = d_model
        self.subsampling = Subsampling(input_dim, d_model, subsampling, subsampling_channels)
        if positional == "sinusoidal":
            self.positional: nn.Module | None = SinusoidalPositionalEncoding(d_model)
        elif positional == "learned":
            self.positional = LearnedPositionalEncoding(d_model, max_len)
        else:
            self.positional = None
        self.input_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(
                d_model, num_heads, ffn_dim, left, right, dropout, positional == "rotary", activation, conv_kernel,
                macaron, block_norm, conv_norm,
            )
            for left, right in self.config.layer_contexts()
        )
        self.norm = nn.LayerNorm(d_model)
        if residual_init_scale != 1.0:
            with torch.no_grad():
                for layer in self.layers:
                    for linear in layer.residual_outputs():
                        linear.weight.mul_(residual_init_scale)

    @classmethod
    def from_config(cls, config: EncoderConfig) -> "TruncatedEncoder":
        """Build from an :class:`EncoderConfig`."""
        return cls(**{f: getattr(config, f) for f in config.__dataclass_fields__})

    @property
    def output_dim(self) -> int:
        return self.d_model

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(batch,) input frame counts -> (batch,) output frame counts."""
        return self.subsampling.output_lengths(lengths)

    def embed(self, features: Tensor, lengths: Tensor | None = None, offset: int = 0) -> tuple[Tensor, Tensor | None]:
        """Subsampling + positional encoding: (batch, time, F) -> ((batch, time', D), lengths')."""
        x, out_lengths = self.subsampling(features, lengths)
        if self.positional is not None:
            x = self.positional(x, offset)
        return self.input_dropout(x), out_lengths

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Encode a padded batch.

        Args:
            features: (batch, time, input_dim).
            lengths: (batch,) valid frames per utterance (``None``: all ``time`` frames).

        Returns:
            (output, output_lengths): (batch, time', d_model) with zeros at padded frames, and
            (batch,) valid output frames (``time' = time`` unless subsampling).

        The whole batch is encoded at once: time and memory grow linearly with ``time`` (each
        frame attends to a fixed window), but nothing here bounds them. For inputs of unbounded
        length (hours of audio, live audio), push chunks through :meth:`stream`: the same
        outputs, in memory bounded by the chunk and the per-layer caches
        (:func:`speechattn.inference.streaming.stream_file_outputs` does this for audio files).
        """
        hidden, out_lengths = self.extract_layers(features, lengths)
        return hidden[-1], out_lengths

    def extract_layers(self, features: Tensor, lengths: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        """Outputs of every layer (for multi-layer aggregation heads).

        Returns:
            (hidden, output_lengths): ``num_layers`` tensors of (batch, time', d_model), the
            last one after the final LayerNorm, all zero at padded frames.
        """
        if features.dim() != 3 or features.shape[-1] != self.input_dim:
            raise ValueError(f"expected (batch, time, {self.input_dim}) features, got {tuple(features.shape)}")
        if lengths is None:
            lengths = torch.full((features.shape[0],), features.shape[1], dtype=torch.long, device=features.device)
        x, out_lengths = self.embed(features, lengths)
        assert out_lengths is not None
        valid = frame_mask(out_lengths, x.shape[1], x.device)[..., None].to(x.dtype)
        # Layers start .. stop - 1 run at half rate; the full-rate input of layer ``start`` is
        # added back right after layer ``stop - 1`` (no layer when there is no time reduction).
        start, stop = (self.half_rate.start, self.half_rate.stop) if self.half_rate else (-1, -1)
        time = x.shape[1]
        hidden, skip, lengths_now = [], x, out_lengths
        for i, layer in enumerate(self.layers):
            if i == start:
                skip = x
                x, lengths_now = halve_rate(x * valid, out_lengths)
            x = layer(x, lengths_now)
            if i == stop - 1:
                x, lengths_now = skip + double_rate(x, time), out_lengths
            out = self.norm(x) if i == len(self.layers) - 1 else x
            hidden.append((double_rate(out, time) if start <= i < stop - 1 else out) * valid)
        return hidden, out_lengths

    def stream(self) -> EncoderStream:
        """A fresh streaming session (see :class:`speechattn.nn.streaming.EncoderStream`)."""
        return EncoderStream(self)
