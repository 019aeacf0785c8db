"""The truncated self-attention encoder.

features -> [subsampling] -> positional encoding -> N x [pre-LN truncated MHSA
(+ optional convolution module) + feed-forward] -> LayerNorm. Each layer has its own left/right
context, so the total look-ahead is the sum of the layers' right contexts (plus ``conv_kernel // 2``
per layer with a convolution module), times the subsampling factor, plus the subsampling
convolution's span.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechattn.nn.attention import truncated_attention
from speechattn.nn.convolution import CONV_NORMS, ConvModule
from speechattn.nn.masks import frame_mask
from speechattn.nn.multihead import MultiHeadSelfAttention
from speechattn.nn.positional import (
    POSITIONAL_KINDS,
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
)
from speechattn.nn.subsampling import Subsampling

if TYPE_CHECKING:  # pragma: no cover
    from speechattn.nn.streaming import EncoderStream

__all__ = ["EncoderConfig", "EncoderLayer", "FeedForward", "TruncatedEncoder"]


class SwiGLU(nn.Module):
    """Gated activation ``silu(a) * b`` of the two halves ``a, b`` of the last dimension:
    (..., 2H) -> (..., H)."""

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., 2H) -> (..., H)."""
        a, b = x.chunk(2, dim=-1)
        return F.silu(a) * b


_ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "swiglu": SwiGLU}
# Activations that halve their input: the first linear layer is twice as wide.
_GATED = frozenset({"swiglu"})


def _check_activation(name: str) -> None:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")


# Frames x batch per chunk of the inference path (see EncoderLayer._infer).
_INFERENCE_ROWS = 4096
# Inference on unpadded inputs longer than this many frames runs as a stream of chunks.
_LONG_FRAMES = 16384
_LONG_CHUNK = 4096


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
        _check_activation(self.activation)
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


class FeedForward(nn.Module):
    """Position-wise feed-forward: Linear -> activation -> dropout -> Linear -> dropout.

    With a gated activation (``"swiglu"``) the first Linear is ``2 * ffn_dim`` wide and the
    activation halves it: ``ffn_dim = 2/3`` of a plain feed-forward's width has its parameters.
    """

    def __init__(self, d_model: int, ffn_dim: int, dropout: float = 0.0, activation: str = "gelu") -> None:
        super().__init__()
        _check_activation(activation)
        self.net = nn.Sequential(
            nn.Linear(d_model, 2 * ffn_dim if activation in _GATED else ffn_dim),
            _ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, d_model),
            nn.Dropout(dropout),
        )

    @property
    def output(self) -> nn.Linear:
        """The second Linear (ffn_dim -> d_model)."""
        out = self.net[3]
        assert isinstance(out, nn.Linear)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., d_model) -> (..., d_model)."""
        return self.net(x)


class EncoderLayer(nn.Module):
    """Pre-LayerNorm block: ``x + MHSA(LN(x))``, then ``x + Conv(x)`` when ``conv_kernel > 0``
    (:class:`ConvModule`, which starts with its own LayerNorm), then ``x + FFN(LN(x))``.

    ``macaron=True`` adds a second feed-forward module before the attention and halves both
    feed-forward residuals (``x + FFN(LN(x)) / 2``, as in the Conformer); ``block_norm=True``
    ends the block with a LayerNorm. Both are per-frame, so the block streams as before.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ffn_dim: int,
        left_context: int | None,
        right_context: int | None,
        dropout: float = 0.1,
        rotary: bool = True,
        activation: str = "gelu",
        conv_kernel: int = 0,
        macaron: bool = False,
        block_norm: bool = False,
        conv_norm: str = "layer",
    ) -> None:
        super().__init__()
        # Optional modules exist only when used (no state_dict keys otherwise): old checkpoints load.
        if macaron:
            self.pre_ffn_norm = nn.LayerNorm(d_model)
            self.pre_ffn: FeedForward | None = FeedForward(d_model, ffn_dim, dropout, activation)
        else:
            self.pre_ffn = None
        self.ffn_scale = 0.5 if macaron else 1.0
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, num_heads, left_context, right_context, dropout, rotary=rotary)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, ffn_dim, dropout, activation)
        self.conv: ConvModule | None = ConvModule(d_model, conv_kernel, dropout, conv_norm) if conv_kernel else None
        self.out_norm: nn.LayerNorm | None = nn.LayerNorm(d_model) if block_norm else None

    def residual_outputs(self) -> list[nn.Linear]:
        """The last Linear of each residual branch: what ``residual_init_scale`` scales."""
        outs = [self.attn.out, self.ffn.output]
        if self.pre_ffn is not None:
            outs.append(self.pre_ffn.output)
        if self.conv is not None:
            outs.append(self.conv.pointwise_out)
        return outs

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: (batch, time, d_model) -> (batch, time, d_model)."""
        if self.training or torch.is_grad_enabled() or self.conv is not None:
            x = self.pre(x)
            x = x + self.attn(self.attn_norm(x), lengths)
            if self.conv is not None:
                x = x + self.conv(x, lengths)
            return self.feed_forward(x)
        return self._infer(x, lengths)

    def pre(self, x: Tensor) -> Tensor:
        """The per-frame part before the attention: ``x + FFN(LN(x)) / 2`` with ``macaron``, else ``x``."""
        if self.pre_ffn is None:
            return x
        return x + self.ffn_scale * self.pre_ffn(self.pre_ffn_norm(x))

    def _infer(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """The same computation for inference, with the per-frame work (norms, projections,
        rotary, feed-forward) done on chunks of frames: on long inputs the activations of a chunk
        stay in cache, which makes this memory-bound work much faster. Residuals are in place."""
        batch, time, d_model = x.shape
        attn = self.attn
        chunk = max(64, _INFERENCE_ROWS // max(batch, 1))
        shape = (batch, attn.num_heads, time, attn.head_dim)
        q, k, v = x.new_empty(shape), x.new_empty(shape), x.new_empty(shape)
        y = x.clone()
        for start in range(0, time, chunk):
            stop = min(time, start + chunk)
            part = y[:, start:stop]
            if self.pre_ffn is not None:
                part += self.ffn_scale * self.pre_ffn(self.pre_ffn_norm(part))
            qc, kc, vc = attn.project(self.attn_norm(part), offset=start)
            q[:, :, start:stop], k[:, :, start:stop], v[:, :, start:stop] = qc, kc, vc
        a = truncated_attention(q, k, v, attn.left_context, attn.right_context, lengths)
        del q, k, v
        for start in range(0, time, chunk):
            stop = min(time, start + chunk)
            part = y[:, start:stop]
            part += attn.out(a[:, :, start:stop].transpose(1, 2).reshape(batch, stop - start, d_model))
            part += self.ffn_scale * self.ffn(self.ffn_norm(part))
            if self.out_norm is not None:
                part.copy_(self.out_norm(part))
        return y

    def finish(self, x: Tensor, attended: Tensor) -> Tensor:
        """Residual + feed-forward after attention computed elsewhere (used by streaming of
        layers without convolution module; a convolution needs future frames, see
        :mod:`speechattn.nn.streaming`). ``x`` is the attention's input, after :meth:`pre`."""
        if self.conv is not None:
            raise RuntimeError("finish() does not apply to a layer with a convolution module")
        x = x + attended
        return self.feed_forward(x)

    def feed_forward(self, x: Tensor) -> Tensor:
        """The last residual sub-block: ``x + FFN(LN(x))`` (halved with ``macaron``), then the
        block's LayerNorm with ``block_norm``."""
        x = x + self.ffn_scale * self.ffn(self.ffn_norm(x))
        return x if self.out_norm is None else self.out_norm(x)


def average_pairs(x: Tensor) -> Tensor:
    """(batch, time, D) -> (batch, ceil(time / 2), D): the mean of frames 2j and 2j + 1; an odd
    last frame is averaged with a zero frame."""
    batch, time, dim = x.shape
    if time % 2:
        x = torch.cat([x, x.new_zeros(batch, 1, dim)], dim=1)
    return x.reshape(batch, x.shape[1] // 2, 2, dim).mean(dim=2)  # explicit sizes: batch may be 0


def halve_rate(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`average_pairs` of a padded batch (``x`` must be zero at padded frames) and its
    lengths: (batch,) -> ceil(lengths / 2)."""
    return average_pairs(x), torch.div(lengths + 1, 2, rounding_mode="floor")


def double_rate(x: Tensor, time: int) -> Tensor:
    """Repeat every frame twice and keep the first ``time``: (batch, t, D) -> (batch, time, D)."""
    return x.repeat_interleave(2, dim=1)[:, :time]


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
        """
        if self._use_stream(features, lengths):
            # Long input at inference: the exact streaming computation in large chunks gives the
            # same outputs with memory bounded by the chunk and cache-sized working sets.
            stream = self.stream()
            parts = [stream.push(features[:, i : i + _LONG_CHUNK]) for i in range(0, features.shape[1], _LONG_CHUNK)]
            parts.append(stream.flush())
            out = torch.cat(parts, dim=1)
            full = torch.full((features.shape[0],), features.shape[1], dtype=torch.long, device=features.device)
            return out, self.output_lengths(full)
        hidden, out_lengths = self.extract_layers(features, lengths)
        return hidden[-1], out_lengths

    def _use_stream(self, features: Tensor, lengths: Tensor | None) -> bool:
        if self.training or torch.is_grad_enabled() or features.dim() != 3 or features.shape[1] <= _LONG_FRAMES:
            return False
        if any(layer.attn.right_context is None for layer in self.layers):
            return False
        return lengths is None or bool((lengths == features.shape[1]).all())

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

    def stream(self) -> "EncoderStream":
        """A fresh streaming session (see :class:`speechattn.nn.streaming.EncoderStream`)."""
        from speechattn.nn.streaming import EncoderStream

        return EncoderStream(self)
