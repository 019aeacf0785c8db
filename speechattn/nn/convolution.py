"""Conformer-style convolution module of an encoder block (streamable with either normalisation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechattn.nn.masks import frame_mask

__all__ = ["CONV_NORMS", "ConvModule", "depthwise_conv"]

CONV_NORMS = ("layer", "batch")


def depthwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Depthwise 1-D convolution over time, without padding, in time-major layout.

    The same as ``conv1d(x.transpose(1, 2), weight, bias, groups=D).transpose(1, 2)`` but done
    as a 2-D convolution on the channels-last view of ``x``, with no layout copy; its backward
    computes the weight gradient as one grouped convolution (see :class:`_DepthwiseConv`). On
    CPU this is several times faster than ``nn.Conv1d`` on the transposed input.

    Args:
        x: (batch, time + K - 1, D).
        weight: (D, 1, K), as in ``nn.Conv1d(D, D, K, groups=D)``.
        bias: (D,) or ``None``.

    Returns:
        Tensor: (batch, time, D).
    """
    if x.dim() != 3 or weight.dim() != 3 or weight.shape[0] != x.shape[2] or weight.shape[1] != 1:
        raise ValueError(f"depthwise_conv: x (batch, time, D) and weight (D, 1, K) expected, "
                         f"got {tuple(x.shape)} and {tuple(weight.shape)}")
    if x.shape[1] < weight.shape[2]:
        raise ValueError(f"depthwise_conv: {x.shape[1]} frames are fewer than the kernel width {weight.shape[2]}")
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)):
        return _DepthwiseConv.apply(x, weight, bias)
    return _conv_time_major(x, weight, bias)


def _conv_time_major(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """(B, T + K - 1, D) -> (B, T, D); the (B, D, 1, T) view of a time-major tensor is channels-last."""
    y = _conv2d(x.transpose(1, 2).unsqueeze(2), weight.unsqueeze(2), bias, groups=x.shape[2])
    return y.squeeze(2).transpose(1, 2)


def _conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> Tensor:
    """``F.conv2d``, except that on the CPU a bf16 / fp16 convolution (explicit, or from autocast)
    is computed in float32 and its result cast back to the dtype it would have had.

    Why: oneDNN's reduced-precision depthwise kernels hang on some CPUs. On an AMD EPYC (Zen 4,
    AVX512-BF16) with 2 or more torch threads, a bf16 depthwise ``conv2d`` of shape (1, 32, 1, 76)
    did not return within minutes (stuck generating its JIT kernel), while the same call in
    float32 took 8 ms, and in bf16 with one thread 29 ms. The depthwise convolution is a small
    part of a layer's work (K multiply-adds per value), so float32 costs little.
    """
    if x.device.type != "cpu":
        return F.conv2d(x, weight, bias, groups=groups)
    autocast_on = torch.is_autocast_enabled("cpu")
    low = (torch.bfloat16, torch.float16)
    out_dtype = torch.get_autocast_dtype("cpu") if autocast_on else x.dtype
    if not autocast_on and x.dtype not in low:
        return F.conv2d(x, weight, bias, groups=groups)
    with torch.autocast("cpu", enabled=False):
        y = F.conv2d(x.float(), weight.float(), None if bias is None else bias.float(), groups=groups)
    return y.to(out_dtype) if out_dtype in low else y


class _DepthwiseConv(torch.autograd.Function):
    """:func:`depthwise_conv` with a faster backward on CPU.

    The input gradient is the convolution of the zero-padded output gradient with the flipped
    kernel. The weight gradient, ``dW[d, k] = sum_{b,t} x[b, t + k, d] * dy[b, t, d]``, is one
    convolution with a group per (batch, channel) pair, the output gradient being the kernel:
    faster than the generic depthwise weight gradient. Runs in the input's dtype (autocast picks
    it before the call); gradients come back in each argument's dtype.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        w = weight.to(x.dtype)
        b = None if bias is None else bias.to(x.dtype)
        with torch.autocast(x.device.type, enabled=False):
            y = _conv_time_major(x, w, b)
        ctx.save_for_backward(x, w)
        ctx.weight_dtype = weight.dtype
        ctx.bias_dtype = None if bias is None else bias.dtype
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # type: ignore[override]
        x, w = ctx.saved_tensors
        batch, frames, dim = x.shape
        k = w.shape[2]
        grad = grad.to(x.dtype)
        acc = torch.promote_types(x.dtype, torch.float32)  # sums in at least float32
        grad_x = grad_w = grad_b = None
        with torch.autocast(x.device.type, enabled=False):
            if ctx.needs_input_grad[0]:
                grad_x = _conv_time_major(F.pad(grad, (0, 0, k - 1, k - 1)), w.flip(-1), None)
            if ctx.needs_input_grad[1]:
                time = frames - k + 1
                inp = x.transpose(1, 2).reshape(1, batch * dim, 1, frames)
                kernel = grad.transpose(1, 2).reshape(batch * dim, 1, 1, time)
                grad_w = _conv2d(inp, kernel, None, groups=batch * dim).view(batch, dim, k).sum(0, dtype=acc)
                grad_w = grad_w.unsqueeze(1).to(ctx.weight_dtype)
            if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
                grad_b = grad.sum((0, 1), dtype=acc).to(ctx.bias_dtype)
        return grad_x, grad_w, grad_b


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
        return depthwise_conv(g, self.depthwise.weight, self.depthwise.bias)

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
            valid = frame_mask(lengths, x.shape[1], x.device)
            g = g.masked_fill(~valid[..., None], 0.0)
        g = F.pad(g, (0, 0, self.padding, self.padding))
        return self.post(self.mix(g), valid)
