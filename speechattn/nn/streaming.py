"""Chunk-by-chunk inference of :class:`~speechattn.nn.encoder.TruncatedEncoder`.

The stream gives exactly the offline outputs (up to float rounding): every layer keeps

- the keys/values of the last ``left_context`` frames it has already answered (the cache), and
- the queries of the frames still waiting for ``right_context`` future frames.

A frame of layer ``i`` is computed as soon as its ``right_context`` future frames of layer ``i``'s
input are known (plus, in a layer with a convolution module of kernel ``K``, the ``K // 2``
future frames of the post-attention signal that the centred convolution reads: such a layer keeps
the gated convolution inputs of the frames it still needs, starting with ``K // 2`` zero frames
like the offline zero padding), so the look-ahead is fixed and memory is bounded by chunk + caches, whatever
the total length. Call :meth:`EncoderStream.flush` at the end of the input: it computes the last
frames with the truncated right context, as the offline call does at the end of a sequence.

With time reduction (``time_reduce_at`` / ``time_recover_at``), the frames entering the first
half-rate layer are averaged in pairs as they complete (the last odd frame with a zero frame at
:meth:`EncoderStream.flush`), and the full-rate frames wait until the last half-rate layer's
outputs for them come back; the half-rate layers keep their caches in half-rate frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from speechattn.nn.attention import truncated_attention
from speechattn.nn.layers import EncoderLayer, average_pairs, double_rate

if TYPE_CHECKING:  # pragma: no cover - annotations only: the encoder imports this module
    from speechattn.nn.encoder import TruncatedEncoder

__all__ = ["EncoderStream"]


class _SubsamplingState:
    """Buffers input frames until a subsampled output frame's whole span is available."""

    def __init__(self, encoder: TruncatedEncoder) -> None:
        self.sub = encoder.subsampling
        self.buffer: Tensor | None = None

    def push(self, x: Tensor) -> Tensor:
        buf = x if self.buffer is None else torch.cat([self.buffer, x], dim=1)
        rf, stride = self.sub.receptive_field, self.sub.stride
        available = buf.shape[1]
        count = 0 if available < rf else (available - rf) // stride + 1
        if count == 0:
            self.buffer = buf
            return buf.new_zeros(buf.shape[0], 0, self.sub.proj.out_features)
        y, _ = self.sub(buf[:, : stride * (count - 1) + rf])
        self.buffer = buf[:, stride * count :]
        return y


# Chunks up to this many ready queries attend through one fused SDPA call with a
# (queries x span) band mask; longer ones use the blocked kernel.
_DENSE_QUERIES = 256


def _span_attention(q: Tensor, keys: Tensor, values: Tensor, first: int, left: int | None, right: int) -> Tensor:
    """Attention of ``q`` (queries at span positions ``first ..``) over the cached span.

    q: (batch, heads, count, head_dim); keys/values: (batch, heads, span, head_dim). Every key of
    the span is a real frame, so only the band limits what a query sees.
    """
    count, span = q.shape[2], keys.shape[2]
    if count <= _DENSE_QUERIES:
        pos = torch.arange(first, first + count, device=q.device)[:, None]
        key = torch.arange(span, device=q.device)[None, :]
        allowed = key <= pos + right
        if left is not None:
            allowed &= key >= pos - left
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed)
    # Long chunk: scatter the queries into the span and use the blocked kernel on the span.
    q_span = q.new_zeros(keys.shape)
    q_span[:, :, first : first + count] = q
    return truncated_attention(q_span, keys, values, left, right)[:, :, first : first + count]


class _LayerState:
    """Cache of one layer: keys/values of frames [key_start, received) and pending queries."""

    def __init__(self, layer: EncoderLayer) -> None:
        self.layer = layer
        self.left = layer.attn.left_context
        self.right = layer.attn.right_context
        if self.right is None:
            raise ValueError("streaming needs a finite right_context in every layer")
        self.received = 0  # input frames seen
        self.done = 0  # output frames produced (= position of the first pending query)
        self.key_start = 0
        self.keys: Tensor | None = None
        self.values: Tensor | None = None
        self.queries: Tensor | None = None  # (batch, heads, pending, head_dim)
        self.residual: Tensor | None = None  # (batch, pending, d_model)
        # Convolution module (if any): post-attention frames h of [conv_done, done) waiting for
        # their conv output, and the GLU outputs of frames [conv_done - pad, done) (negative
        # positions are the left zero padding).
        self.conv = layer.conv
        self.pad = 0 if self.conv is None else self.conv.padding
        self.conv_done = 0
        self.conv_pending: Tensor | None = None  # (batch, done - conv_done, d_model)
        self.gates: Tensor | None = None  # (batch, pad + done - conv_done, d_model)

    @staticmethod
    def _cat(old: Tensor | None, new: Tensor, dim: int) -> Tensor:
        return new if old is None else torch.cat([old, new], dim=dim)

    def push(self, x: Tensor, final: bool) -> Tensor:
        """Input frames x (batch, new, d_model) -> the layer's outputs that became computable."""
        attn = self.layer.attn
        if x.shape[1]:
            x = self.layer.pre(x)
            q, k, v = attn.project(self.layer.attn_norm(x), offset=self.received)
            self.keys = self._cat(self.keys, k, 2)
            self.values = self._cat(self.values, v, 2)
            self.queries = self._cat(self.queries, q, 2)
            self.residual = self._cat(self.residual, x, 1)
            self.received += x.shape[1]
        h = self._attend(x, final)
        if self.conv is None:
            return h if not h.shape[1] else self.layer.feed_forward(h)
        return self._convolve(h, final)

    def _convolve(self, h: Tensor, final: bool) -> Tensor:
        """Post-attention frames h (batch, new, d_model) -> the layer outputs now ready."""
        conv = self.conv
        assert conv is not None
        if h.shape[1]:
            g = conv.gate(h)
            if self.gates is None:
                self.gates = g.new_zeros(g.shape[0], self.pad, g.shape[2])
            self.gates = torch.cat([self.gates, g], dim=1)
            self.conv_pending = self._cat(self.conv_pending, h, 1)
        if self.gates is None or self.conv_pending is None:
            return h
        gates = self.gates
        if final:
            gates = torch.cat([gates, gates.new_zeros(gates.shape[0], self.pad, gates.shape[2])], dim=1)
        ready_end = self.done if final else self.done - self.pad
        count = ready_end - self.conv_done
        if count <= 0:
            return h[:, :0]
        # gates[i] is frame conv_done - pad + i: outputs conv_done .. ready_end need up to ready_end + pad.
        c = conv.post(conv.mix(gates[:, : count + 2 * self.pad]))
        y = self.layer.feed_forward(self.conv_pending[:, :count] + c)
        self.conv_done += count
        self.conv_pending = self.conv_pending[:, count:]
        self.gates = self.gates[:, count:]
        return y

    def _attend(self, x: Tensor, final: bool) -> Tensor:
        """Post-attention frames ``x + MHSA(LN(x))`` that became computable."""
        attn = self.layer.attn
        ready_end = self.received if final else self.received - self.right
        count = ready_end - self.done
        if count <= 0 or self.queries is None:
            return x.new_zeros(x.shape[0], 0, x.shape[2])
        assert self.keys is not None and self.values is not None and self.residual is not None
        first = self.done - self.key_start
        a = _span_attention(self.queries[:, :, :count], self.keys, self.values, first, self.left, self.right)
        batch = a.shape[0]
        a = attn.dropout(attn.out(a.transpose(1, 2).reshape(batch, count, attn.d_model)))
        y = self.residual[:, :count] + a

        self.done += count
        self.queries = self.queries[:, :, count:]
        self.residual = self.residual[:, count:]
        if self.left is not None:
            drop = max(0, self.done - self.left - self.key_start)
            if drop:
                self.keys = self.keys[:, :, drop:]
                self.values = self.values[:, :, drop:]
                self.key_start += drop
        return y


class _HalveState:
    """Time reduction in a stream: averages pairs of frames as :func:`halve_rate` does offline,
    and keeps the full-rate frames until :meth:`recover` adds them back."""

    def __init__(self) -> None:
        self.odd: Tensor | None = None  # a frame waiting for its pair
        self.skip: Tensor | None = None  # full-rate frames not yet recovered

    def halve(self, x: Tensor, final: bool) -> Tensor:
        """Full-rate frames (batch, new, D) -> the half-rate frames now complete."""
        self.skip = x if self.skip is None else torch.cat([self.skip, x], dim=1)
        buf = x if self.odd is None else torch.cat([self.odd, x], dim=1)
        complete = buf.shape[1] if final else buf.shape[1] - buf.shape[1] % 2
        self.odd = buf[:, complete:] if complete < buf.shape[1] else None
        return average_pairs(buf[:, :complete])  # at the end, an odd frame is paired with zeros

    def recover(self, h: Tensor) -> Tensor:
        """Half-rate outputs (batch, new, D) -> full-rate ``skip + repeat(h)`` for their frames
        (one frame fewer than twice ``new`` for the zero-completed last pair)."""
        assert self.skip is not None  # halve() ran earlier in the same pass
        count = min(2 * h.shape[1], self.skip.shape[1])
        y = self.skip[:, :count] + double_rate(h, count)
        self.skip = self.skip[:, count:]
        return y


class EncoderStream:
    """Streaming session over one :class:`TruncatedEncoder` (use ``encoder.stream()``).

    ``push(features)`` takes the next (batch, frames, input_dim) chunk, of any size, and returns
    the (batch, frames', d_model) outputs that became computable; ``flush()`` returns the rest.
    Concatenated, they equal ``encoder(all_features)[0]``. All streams of the batch advance
    together. Run the encoder in ``eval()`` mode (dropout would differ from the offline call).
    """

    def __init__(self, encoder: TruncatedEncoder) -> None:
        self.encoder = encoder
        self.subsampling = _SubsamplingState(encoder)
        self.layers = [_LayerState(layer) for layer in encoder.layers]
        self.half_rate = encoder.half_rate
        self.reduction = _HalveState() if self.half_rate else None
        self.frames_out = 0  # encoder output frames produced so far
        self.finished = False

    @property
    def lookahead_frames(self) -> int:
        """Input frames a stream must see beyond a frame before that frame's output is produced."""
        sub = self.encoder.subsampling
        rights = 0
        for i, state in enumerate(self.layers):
            # A half-rate frame spans two frames; the first of a pair also waits for the second.
            rights += ((state.right or 0) + state.pad) * (2 if i in self.half_rate else 1)
        rights += 1 if self.half_rate else 0
        return rights * sub.stride + sub.receptive_field - 1

    def push(self, features: Tensor) -> Tensor:
        """Feed (batch, frames, input_dim); return the (batch, frames', d_model) outputs now ready."""
        return self._run(features, final=False)

    def flush(self) -> Tensor:
        """Signal the end of the input and return the remaining outputs."""
        batch_like = self.layers[0].residual
        if batch_like is None and self.subsampling.buffer is None:
            empty = torch.zeros(0, 0, self.encoder.input_dim)
        else:
            ref = self.subsampling.buffer if self.subsampling.buffer is not None else batch_like
            assert ref is not None
            empty = ref.new_zeros(ref.shape[0], 0, self.encoder.input_dim)
        out = self._run(empty, final=True)
        self.finished = True
        return out

    def _run(self, features: Tensor, final: bool) -> Tensor:
        if self.finished:
            raise RuntimeError("this stream was flushed; start a new one with encoder.stream()")
        enc = self.encoder
        if features.dim() != 3 or features.shape[-1] != enc.input_dim:
            raise ValueError(f"expected (batch, frames, {enc.input_dim}) features, got {tuple(features.shape)}")
        x = self.subsampling.push(features) if features.shape[1] else features.new_zeros(
            features.shape[0], 0, enc.d_model
        )
        if x.shape[1] and enc.positional is not None:
            x = enc.positional(x, self.layers[0].received)
        x = enc.input_dropout(x)
        for i, state in enumerate(self.layers):
            if self.reduction is not None and i == self.half_rate.start:
                x = self.reduction.halve(x, final)
            x = state.push(x, final)
            if self.reduction is not None and i == self.half_rate.stop - 1:
                x = self.reduction.recover(x)
        y = enc.norm(x)
        self.frames_out += y.shape[1]
        return y
