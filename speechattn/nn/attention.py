"""Truncated (windowed) scaled dot-product attention.

Query ``t`` attends to the keys ``t - left .. t + right`` that lie inside the valid length of
its sequence. With ``left = right = None`` it is ordinary full attention.

The CPU/GPU-generic kernel computes the band block by block and never materialises a
``T x T`` matrix: queries are cut into blocks of ``block`` frames and each block is scored
against the ``block + left + right`` keys around it. All (batch, head) rows are laid end to end
in one zero-padded buffer, so the key/value windows of every block are a single strided
*view* of that buffer (``Tensor.unfold``) that ``torch.bmm`` consumes without a copy. Rows are
processed in groups whose temporaries fit a fixed memory budget, so time and memory are
``O(T * (left + right))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["truncated_attention", "band_mask"]

# Budget (in elements) for the per-group temporaries: padded q/k/v copies and scores.
_GROUP_ELEMENTS = 8 * 1024 * 1024


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
    side only (``None`` with an int) is ``O(T^2)`` and uses a dense mask, and so does a sequence
    shorter than one block's key window (``T <= block + left + right``), where that is cheaper.
    Otherwise the cost is ``O(T * (left + right + block))`` in time and memory.
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
    if block is None and time <= _default_block(left, right) + left + right:
        # A sequence no longer than one block's key window: one fused SDPA call over the whole
        # (T x T) band costs less than the blocked kernel (typical of training crops).
        return _dense_attention(q, k, v, left, right, lengths, scale)
    return _banded_attention(q, k, v, left, right, lengths, scale, block)


def _valid_frames(lengths: Tensor | None, batch: int, time: int, device: torch.device) -> Tensor:
    """(batch, time) bool: frame is inside its sequence."""
    if lengths is None:
        return torch.ones(batch, time, dtype=torch.bool, device=device)
    return torch.arange(time, device=device)[None, :] < lengths.to(device)[:, None]


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
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if lengths is not None:
        out = out * valid[:, None, :, None].to(out.dtype)
    return out


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

    rows = batch * heads
    qr = q.reshape(rows, time, dim)
    kr = k.reshape(rows, time, dim)
    vr = v.reshape(rows, time, dim_v)
    lens = (
        torch.full((batch,), time, dtype=torch.long, device=q.device)
        if lengths is None
        else lengths.to(device=q.device, dtype=torch.long)
    )
    row_lengths = lens.repeat_interleave(heads)

    # Static part of the mask: query i of a block sees window positions i .. i + left + right.
    i = torch.arange(block, device=q.device)[:, None]
    j = torch.arange(width, device=q.device)[None, :]
    band = (j >= i) & (j <= i + left + right)  # (block, width)
    # Position of window slot j of block b in the sequence.
    key_pos = torch.arange(nblocks, device=q.device)[:, None] * block - left + j  # (nblocks, width)

    per_row = padded * (2 * dim + dim_v) + nblocks * block * width
    group = max(1, min(rows, _GROUP_ELEMENTS // max(per_row, 1)))
    need_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    out = None if need_grad else q.new_empty(rows, time, dim_v)
    pieces: list[Tensor] = []
    for start in range(0, rows, group):
        stop = min(rows, start + group)
        piece = _banded_group(
            qr[start:stop], kr[start:stop], vr[start:stop], row_lengths[start:stop],
            left, right, block, nblocks, band, key_pos, scale, need_grad,
        )
        if out is None:
            pieces.append(piece)
        else:
            out[start:stop] = piece
    if out is None:
        out = torch.cat(pieces, dim=0) if len(pieces) > 1 else pieces[0]
    return out.view(batch, heads, time, dim_v)


def _flat_windows(x: Tensor, left: int, right: int, block: int, padded: int) -> Tensor:
    """(rows, time, d) -> (rows * nblocks, width, d) view: the keys around each query block.

    Rows are padded to ``padded`` frames and laid end to end with ``left`` zeros before the
    first and ``right`` after the last, so one ``unfold`` yields every block's window. Slots that
    fall into a neighbouring row are masked by the caller.
    """
    rows, time, d = x.shape
    flat = F.pad(x, (0, 0, 0, padded - time)).reshape(rows * padded, d)
    flat = F.pad(flat, (0, 0, left, right))
    return flat.unfold(0, block + left + right, block).transpose(1, 2)


def _banded_group(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    lengths: Tensor,
    left: int,
    right: int,
    block: int,
    nblocks: int,
    band: Tensor,
    key_pos: Tensor,
    scale: float,
    need_grad: bool,
) -> Tensor:
    rows, time, dim = q.shape
    padded = nblocks * block
    qb = F.pad(q, (0, 0, 0, padded - time)).reshape(rows * nblocks, block, dim)
    kw = _flat_windows(k, left, right, block, padded)  # (rows*nblocks, width, dim)
    vw = _flat_windows(v, left, right, block, padded)

    scores = torch.bmm(qb, kw.transpose(1, 2))  # (rows*nblocks, block, width)
    key_ok = (key_pos[None] >= 0) & (key_pos[None] < lengths[:, None, None])  # (rows, nblocks, width)
    allowed = band[None, None] & key_ok[:, :, None, :]  # (rows, nblocks, block, width)
    allowed = allowed.view(rows * nblocks, block, -1)
    # Padded queries may see no valid key at all; a finite fill keeps their softmax NaN-free
    # (their outputs are zeroed below), so no NaN can reach the gradients.
    fill = torch.finfo(scores.dtype).min
    if need_grad:
        probs = torch.softmax(scores.mul(scale).masked_fill(~allowed, fill), dim=-1)
    else:
        # Inference: the same softmax, in place, to halve the temporaries.
        probs = scores.mul_(scale).masked_fill_(~allowed, fill)
        probs.sub_(probs.amax(dim=-1, keepdim=True)).exp_()
        probs.div_(probs.sum(dim=-1, keepdim=True))
    out = torch.bmm(probs, vw).view(rows, padded, -1)[:, :time]
    query_ok = torch.arange(time, device=q.device)[None, :] < lengths[:, None]
    return out * query_ok[:, :, None].to(out.dtype)


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
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

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
    valid = torch.arange(time, device=q.device)[None, :] < lens[:, None]
    return out * valid[:, None, :, None].to(out.dtype)


_COMPILED_FLEX = None


def _compiled_flex():  # pragma: no cover - CUDA only
    global _COMPILED_FLEX
    if _COMPILED_FLEX is None:
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=True)
    return _COMPILED_FLEX
