"""Truncated (windowed) scaled dot-product attention.

Query ``t`` attends to the keys ``t - left .. t + right`` that lie inside the valid length of
its sequence. With ``left = right = None`` it is ordinary full attention.

The CPU/GPU-generic kernel computes the band block by block and never materialises a
``T x T`` matrix: queries are cut into blocks of ``block`` frames and each block is scored
against the ``block + left + right`` keys around it. All (batch, head) rows are laid end to end
in one zero-padded buffer, so the key/value windows of every block are a single strided
*view* of that buffer (``Tensor.unfold``) that ``torch.bmm`` consumes without a copy (when
gradients are needed the windows are copied out once, see :class:`_Windows`). Rows are
processed in groups whose temporaries fit a fixed memory budget, so time and memory are
``O(T * (left + right))``.

Sequences of at most :data:`DENSE_MAX_FRAMES` frames (training batches, mostly) skip the
blocked kernel: there one dense ``T x T`` pass with the band as a mask is faster.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from speechattn.nn.masks import frame_mask

__all__ = ["DENSE_MAX_FRAMES", "truncated_attention", "band_mask"]

# Budget (in elements) for the per-group temporaries: padded q/k/v copies and scores.
_GROUP_ELEMENTS = 8 * 1024 * 1024

#: Sequences of up to this many frames use a dense (T x T) kernel with the band as a mask: on
#: CPU it beats the blocked kernel there, in training (forward + backward) and in inference, for
#: windows of 16..64 frames (``benchmarks/attention_short.py``).
DENSE_MAX_FRAMES = 160


def band_mask(
    num_queries: int,
    num_keys: int,
    left: int | None,
    right: int | None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Dense boolean band mask, ``True`` where query ``t`` may attend key ``s``.

    Allowed: ``t - left <= s <= t + right`` (``None`` = unlimited on that side). This is the
    ``O(T^2)`` reference used by tests and by the full-attention fallback.

    Returns:
        Tensor: (num_queries, num_keys) bool.
    """
    t = torch.arange(num_queries, device=device)[:, None]
    s = torch.arange(num_keys, device=device)[None, :]
    allowed = torch.ones(num_queries, num_keys, dtype=torch.bool, device=device)
    if left is not None:
        allowed &= s >= t - left
    if right is not None:
        allowed &= s <= t + right
    return allowed


def _check_args(q: Tensor, k: Tensor, v: Tensor, left: int | None, right: int | None, lengths: Tensor | None) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"q, k, v must be 4-D (batch, heads, time, head_dim); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape != k.shape[:3] + (q.shape[3],) or k.shape[:3] != v.shape[:3] or q.shape[3] != k.shape[3]:
        raise ValueError(
            "truncated_attention is self-attention: q, k, v must share batch, heads and time, and q/k their head_dim; "
            f"got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    for name, value in (("left", left), ("right", right)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{name} must be a non-negative int or None, got {value!r}")
    if lengths is not None:
        if lengths.dim() != 1 or lengths.shape[0] != q.shape[0]:
            raise ValueError(f"lengths must have shape ({q.shape[0]},), got {tuple(lengths.shape)}")
        if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > q.shape[2]):
            raise ValueError(f"lengths must lie in [0, {q.shape[2]}], got min {int(lengths.min())} max {int(lengths.max())}")


def truncated_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    left: int | None,
    right: int | None,
    lengths: Tensor | None = None,
    *,
    scale: float | None = None,
    block: int | None = None,
) -> Tensor:
    """Scaled dot-product self-attention restricted to a window around each query.

    Args:
        q, k, v: (batch, heads, time, head_dim) queries, keys and values of the same sequence.
        left: how many past frames a query sees (``None``: all of them).
        right: how many future frames a query sees (``None``: all of them).
        lengths: (batch,) valid frames per sequence; keys at ``t >= length`` are ignored and the
            outputs of padded queries are zero. ``None``: all ``time`` frames are valid.
        scale: score scale, default ``1 / sqrt(head_dim)``.
        block: query block size of the banded kernel (default: chosen from the window).

    Returns:
        Tensor: (batch, heads, time, head_dim), equal to
        ``scaled_dot_product_attention(q, k, v, attn_mask=band & valid_keys)`` on valid queries.

    Full attention (``left = right = None``) uses PyTorch's SDPA kernels. A window open on one
    side only (``None`` with an int) is ``O(T^2)`` and uses a dense mask, and so does a short
    sequence (``T <= DENSE_MAX_FRAMES`` = 160 frames, or one block's key window ``block + left + right`` if that is
    longer), where a dense kernel is faster (``benchmarks/attention_short.py``). Otherwise the
    cost is ``O(T * (left + right + block))`` in time and memory.
    """
    _check_args(q, k, v, left, right, lengths)
    if block is not None and block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    batch, heads, time, dim = q.shape
    scale = dim**-0.5 if scale is None else float(scale)
    if time == 0 or batch == 0:
        return q.new_zeros(batch, heads, time, v.shape[-1])
    if left is None or right is None:
        return _dense_attention(q, k, v, left, right, lengths, scale)
    if q.is_cuda and _flex_available():
        return _flex_attention(q, k, v, left, right, lengths, scale)
    if block is None and _short(time, left, right):
        # A short sequence (typical of training batches): one dense (T x T) pass over the band
        # costs less than the blocked kernel.
        return _dense_attention(q, k, v, left, right, lengths, scale)
    return _banded_attention(q, k, v, left, right, lengths, scale, block)


def _valid_frames(lengths: Tensor | None, batch: int, time: int, device: torch.device) -> Tensor:
    """(batch, time) bool: frame is inside its sequence."""
    if lengths is None:
        return torch.ones(batch, time, dtype=torch.bool, device=device)
    return frame_mask(lengths, time, device)


def _dense_attention(
    q: Tensor, k: Tensor, v: Tensor, left: int | None, right: int | None, lengths: Tensor | None, scale: float
) -> Tensor:
    batch, _, time, _ = q.shape
    valid = _valid_frames(lengths, batch, time, q.device)
    mask: Tensor | None = None
    if left is not None or right is not None:
        mask = band_mask(time, time, left, right, q.device)[None, None]
    if lengths is not None:
        key_ok = valid[:, None, None, :]
        mask = key_ok if mask is None else mask & key_ok
        # A query whose window holds no valid key would give NaN; give it its own key instead.
        # Such queries are padding, and their output is zeroed below.
        mask = mask | torch.eye(time, dtype=torch.bool, device=q.device)[None, None]
    if _needs_grad(q, k, v) and mask is not None and q.device.type == "cpu" and time <= DENSE_MAX_FRAMES:
        # SDPA with a mask falls back to a slow backward on CPU; three plain operations are
        # 2-3 times faster for training at these lengths. Row maxima stay finite (the diagonal).
        scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)
        scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)
        out = torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if lengths is not None:
        out = out * valid[:, None, :, None].to(out.dtype)
    return out


def _short(time: int, left: int, right: int) -> bool:
    """A sequence for which the dense path beats the banded kernel (:data:`DENSE_MAX_FRAMES`,
    or no longer than one block's key window)."""
    return time <= max(DENSE_MAX_FRAMES, _default_block(left, right) + left + right)


def _needs_grad(*tensors: Tensor) -> bool:
    """Autograd will record operations on these tensors."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _default_block(left: int, right: int) -> int:
    # Measured on AVX-512 CPUs (benchmarks/attention.py): ~32 is best for windows of 16..64.
    return int(min(64, max(16, 8 * math.ceil((left + right) / 8 / 1.25))))


def _banded_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    left: int,
    right: int,
    lengths: Tensor | None,
    scale: float,
    block: int | None,
) -> Tensor:
    batch, heads, time, dim = q.shape
    dim_v = v.shape[-1]
    block = _default_block(left, right) if block is None else block
    block = min(block, time)
    nblocks = math.ceil(time / block)
    padded = nblocks * block
    width = block + left + right
    device = q.device

    rows = batch * heads
    qr = q.reshape(rows, time, dim)
    kr = k.reshape(rows, time, dim)
    vr = v.reshape(rows, time, dim_v)
    row_lengths = None if lengths is None else lengths.to(device=device, dtype=torch.long).repeat_interleave(heads)
    min_len = time if row_lengths is None else int(row_lengths.min())

    # Query i of a block sees window slots i .. i + left + right: an additive bias, broadcast over
    # all blocks by baddbmm, so scaling and the band mask cost no extra pass over the scores.
    # The fill is finite so that a query with no valid key (padding) gets a finite softmax.
    fill = torch.finfo(q.dtype).min
    i = torch.arange(block, device=device)[:, None]
    j = torch.arange(width, device=device)[None, :]
    band_bias = torch.zeros(block, width, dtype=q.dtype, device=device)
    band_bias.masked_fill_((j < i) | (j > i + left + right), fill)
    # Slot j of block b holds position b * block - left + j. Only the first blocks (positions
    # < 0) and the blocks from `tail` on (positions >= some row's length) need a key mask.
    key_pos = torch.arange(nblocks, device=device)[:, None] * block - left + j  # (nblocks, width)
    lead = min(nblocks, -(-left // block))
    tail = min(nblocks, max(lead, (min_len - block - right) // block + 1))
    edges = _EdgeMask(key_pos, lead, tail, fill)

    per_row = padded * (2 * dim + dim_v) + 2 * padded * width
    group = max(1, min(rows, _GROUP_ELEMENTS // max(per_row, 1)))
    if _needs_grad(q, k, v):
        pieces = [
            _banded_group(qr[a:b], kr[a:b], vr[a:b], None if row_lengths is None else row_lengths[a:b],
                          left, right, block, nblocks, band_bias, edges, scale, None)
            for a, b in ((a, min(rows, a + group)) for a in range(0, rows, group))
        ]
        out = torch.cat(pieces, dim=0) if len(pieces) > 1 else pieces[0]
    else:
        out = q.new_empty(rows, time, dim_v)
        for a in range(0, rows, group):
            b = min(rows, a + group)
            _banded_group(qr[a:b], kr[a:b], vr[a:b], None if row_lengths is None else row_lengths[a:b],
                          left, right, block, nblocks, band_bias, edges, scale, out[a:b])
    return out.view(batch, heads, time, dim_v)


class _EdgeMask:
    """Key-validity masking of the blocks whose windows leave ``[0, length)``."""

    def __init__(self, key_pos: Tensor, lead: int, tail: int, fill: float) -> None:
        self.key_pos = key_pos
        self.lead = lead
        self.tail = tail
        self.fill = fill

    def apply(self, scores: Tensor, lengths: Tensor | None, time: int) -> Tensor:
        """scores: (rows, nblocks, block, width), masked in place; returns it."""
        if self.lead:
            outside = (self.key_pos[: self.lead] < 0) | (self.key_pos[: self.lead] >= time)
            if lengths is not None:
                outside = outside[None] | (self.key_pos[None, : self.lead] >= lengths[:, None, None])
            scores[:, : self.lead].masked_fill_(outside[..., None, :], self.fill)
        if self.tail < scores.shape[1]:
            pos = self.key_pos[self.tail :]
            limit = torch.full((1,), time, device=pos.device) if lengths is None else lengths
            outside = (pos[None] >= limit[:, None, None]) | (pos[None] < 0)
            scores[:, self.tail :].masked_fill_(outside[:, :, None, :], self.fill)
        return scores


def _flat_windows(x: Tensor, left: int, right: int, block: int, padded: int) -> Tensor:
    """(rows, time, d) -> (rows * nblocks, width, d) view: the keys around each query block.

    Rows are padded to ``padded`` frames and laid end to end with ``left`` zeros before the
    first and ``right`` after the last (one copy of ``x``), so one ``unfold`` yields every
    block's window. Slots that fall into a neighbouring row are masked by the caller.
    """
    rows, time, d = x.shape
    if torch.is_grad_enabled() and x.requires_grad:
        flat = F.pad(F.pad(x, (0, 0, 0, padded - time)).reshape(rows * padded, d), (0, 0, left, right))
        return _Windows.apply(flat, block + left + right, block)
    else:
        flat = x.new_empty(left + rows * padded + right, d)
        flat[:left].zero_()
        flat[left + rows * padded :].zero_()
        body = flat[left : left + rows * padded].view(rows, padded, d)
        body[:, :time].copy_(x)
        body[:, time:].zero_()
    return flat.unfold(0, block + left + right, block).transpose(1, 2)


class _Windows(torch.autograd.Function):
    """``flat.unfold(0, width, step).transpose(1, 2)``, copied out, with a fast backward.

    For training the windows are materialised (a contiguous copy, ``width / step`` times the
    input): the matrix products of the forward and backward passes would otherwise each copy
    the overlapping view again. The windows overlap, so the gradient of ``flat`` sums the
    gradients of every window slot that reads a frame. PyTorch's generic ``unfold_backward``
    does this slowly on CPU; here the window gradient is cut into ``ceil(width / step)`` slices
    of ``step`` slots, and each slice is added into ``flat`` with one strided ``add_`` (slice
    ``s`` of window ``n`` is frames ``n * step + s * step ..``).
    """

    @staticmethod
    def forward(ctx, flat: Tensor, width: int, step: int) -> Tensor:  # type: ignore[override]
        ctx.length = flat.shape[0]
        ctx.step = step
        return flat.unfold(0, width, step).transpose(1, 2).contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        windows, width, d = grad.shape
        step = ctx.step
        slices = -(-width // step)
        # Room for the last slice's overhang; trimmed to the input's length at the end.
        out = grad.new_zeros(max(ctx.length, (windows + slices) * step), d)
        for i in range(slices):
            lo = i * step
            n = min(step, width - lo)
            target = out[lo : lo + windows * step].view(windows, step, d)[:, :n]
            target.add_(grad[:, lo : lo + n])
        return out[: ctx.length], None, None


def _banded_group(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    lengths: Tensor | None,
    left: int,
    right: int,
    block: int,
    nblocks: int,
    band_bias: Tensor,
    edges: _EdgeMask,
    scale: float,
    out: Tensor | None,
) -> Tensor:
    """Attention of a group of rows; writes into ``out`` (rows, time, dv) when given."""
    rows, time, dim = q.shape
    padded = nblocks * block
    if padded == time and q.is_contiguous():
        qb = q.view(rows * nblocks, block, dim)
    else:
        qb = F.pad(q, (0, 0, 0, padded - time)).reshape(rows * nblocks, block, dim)
    kw = _flat_windows(k, left, right, block, padded)  # (rows*nblocks, width, dim)
    vw = _flat_windows(v, left, right, block, padded)

    # scores = band_bias + scale * q k^T, in one pass; then the edge blocks' invalid keys.
    scores = torch.baddbmm(band_bias, qb, kw.transpose(1, 2), alpha=scale)  # (rows*nblocks, block, width)
    edges.apply(scores.view(rows, nblocks, block, -1), lengths, time)
    probs = torch.softmax(scores, dim=-1)
    del scores
    padded_queries = lengths is not None and bool((lengths < time).any())
    if out is not None and padded == time and probs.dtype == vw.dtype == out.dtype:
        torch.bmm(probs, vw, out=out.view(rows * nblocks, block, -1))
        result = out
    else:
        result = torch.bmm(probs, vw.to(probs.dtype)).view(rows, padded, -1)[:, :time]
        if out is not None:
            out.copy_(result)
            result = out
    if padded_queries:
        assert lengths is not None
        query_ok = frame_mask(lengths, time, q.device)
        if out is not None:
            result.masked_fill_(~query_ok[:, :, None], 0.0)
        else:
            result = result * query_ok[:, :, None].to(result.dtype)
    return result


_FLEX = None


def _flex_available() -> bool:
    global _FLEX
    if _FLEX is None:
        try:
            from torch.nn.attention import flex_attention as _fa  # noqa: F401

            _FLEX = True
        except ImportError:  # pragma: no cover - old torch
            _FLEX = False
    return _FLEX


def _flex_attention(
    q: Tensor, k: Tensor, v: Tensor, left: int, right: int, lengths: Tensor | None, scale: float
) -> Tensor:  # pragma: no cover - exercised on CUDA machines only
    """CUDA path: FlexAttention with a block-sparse band mask (skips blocks outside the band)."""
    from torch.nn.attention.flex_attention import create_block_mask

    batch, heads, time, _ = q.shape
    lens = (
        torch.full((batch,), time, dtype=torch.long, device=q.device)
        if lengths is None
        else lengths.to(device=q.device, dtype=torch.long)
    )

    def mask_mod(b, h, q_idx, kv_idx):
        inside = (kv_idx >= q_idx - left) & (kv_idx <= q_idx + right)
        # Padded queries keep their own key so the softmax stays finite; zeroed below.
        return (inside & (kv_idx < lens[b])) | (kv_idx == q_idx)

    block_mask = create_block_mask(mask_mod, batch, None, time, time, device=q.device)
    out = _compiled_flex()(q, k, v, block_mask=block_mask, scale=scale)
    valid = frame_mask(lens, time, q.device)
    return out * valid[:, None, :, None].to(out.dtype)


_COMPILED_FLEX = None


def _compiled_flex():  # pragma: no cover - CUDA only
    global _COMPILED_FLEX
    if _COMPILED_FLEX is None:
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=True)
    return _COMPILED_FLEX
