"""The layers of the truncated self-attention encoder (:mod:`speechattn.nn.encoder`).

An :class:`EncoderLayer` is pre-LN truncated multi-head self-attention (+ an optional convolution
module) and a feed-forward block, each with a residual connection; :func:`halve_rate` /
:func:`double_rate` move frames between the full and the half rate of time-reduction layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechattn.nn.attention import truncated_attention
from speechattn.nn.convolution import ConvModule
from speechattn.nn.multihead import MultiHeadSelfAttention

__all__ = ["EncoderLayer", "FeedForward", "SwiGLU", "average_pairs", "halve_rate", "double_rate"]


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


def check_activation(name: str) -> None:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")


# Frames x batch per chunk of the inference path (see EncoderLayer._infer).
_INFERENCE_ROWS = 4096


class FeedForward(nn.Module):
    """Position-wise feed-forward: Linear -> activation -> dropout -> Linear -> dropout.

    With a gated activation (``"swiglu"``) the first Linear is ``2 * ffn_dim`` wide and the
    activation halves it: ``ffn_dim = 2/3`` of a plain feed-forward's width has its parameters.
    """

    def __init__(self, d_model: int, ffn_dim: int, dropout: float = 0.0, activation: str = "gelu") -> None:
        super().__init__()
        check_activation(activation)
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
