"""truncated_attention against dense-mask SDPA and against a literal per-query loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import speechattn.nn.attention as attention_module
from speechattn.nn.attention import DENSE_MAX_FRAMES, band_mask, truncated_attention

# block=None lets truncated_attention choose: sequences of <= DENSE_MAX_FRAMES frames take the
# dense path (SDPA, or plain operations when gradients are needed). An explicit block forces the
# banded kernel. Tests that check results run both.
PATHS = pytest.mark.parametrize("block", [None, 16], ids=["auto", "banded"])


def _valid(lengths: torch.Tensor, time: int) -> torch.Tensor:
    return torch.arange(time)[None, :] < lengths[:, None]


def dense_reference(q, k, v, left, right, lengths):
    """SDPA with a dense boolean band mask (only valid queries are compared)."""
    time = q.shape[2]
    mask = band_mask(time, time, left, right)[None, None] & _valid(lengths, time)[:, None, None, :]
    mask = mask | torch.eye(time, dtype=torch.bool)  # keeps fully padded rows finite
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def loop_reference(q, k, v, left, right, lengths):
    """For each valid frame: dot products with the keys in its window, softmax, weighted sum."""
    batch, heads, time, dim = q.shape
    out = torch.zeros(batch, heads, time, v.shape[-1], dtype=torch.float64)
    for b in range(batch):
        n = int(lengths[b])
        for h in range(heads):
            for t in range(n):
                lo = 0 if left is None else max(0, t - left)
                hi = n if right is None else min(n, t + right + 1)
                keys = k[b, h, lo:hi].double()
                scores = keys @ q[b, h, t].double() / math.sqrt(dim)
                weights = torch.softmax(scores, dim=0)
                out[b, h, t] = weights @ v[b, h, lo:hi].double()
    return out


def _random_case(gen: torch.Generator, batch, heads, time, dim):
    q, k, v = (torch.randn(batch, heads, time, dim, generator=gen) for _ in range(3))
    lengths = torch.randint(1, time + 1, (batch,), generator=gen)
    lengths[0] = time
    return q, k, v, lengths


@PATHS
@pytest.mark.parametrize(
    "batch,heads,time,dim,left,right",
    [
        (2, 4, 300, 64, 32, 8),
        (3, 2, 7, 16, 32, 8),  # T smaller than the window
        (2, 2, 100, 8, 0, 0),  # each frame sees only itself
        (1, 1, 1, 4, 3, 3),
        (2, 3, 129, 16, 5, 20),  # right > left, T not a multiple of the block
        (2, 2, 64, 8, 64, 64),  # window covers everything
        (2, 2, 50, 8, None, None),  # full attention
        (2, 2, 50, 8, None, 3),  # unlimited past, 3 frames of look-ahead
        (2, 2, 50, 8, 4, None),
    ],
)
def test_matches_dense_band_sdpa(batch, heads, time, dim, left, right, block):
    gen = torch.Generator().manual_seed(time * 7 + dim)
    q, k, v, lengths = _random_case(gen, batch, heads, time, dim)
    out = truncated_attention(q, k, v, left, right, lengths, block=block)
    ref = dense_reference(q, k, v, left, right, lengths)
    valid = _valid(lengths, time)[:, None, :, None]
    assert out.shape == (batch, heads, time, dim)
    assert ((out - ref) * valid).abs().max().item() <= 1e-5
    assert (out * ~valid).abs().max().item() == 0.0  # padded queries are zero


@pytest.mark.parametrize("block", [1, 3, 16, 32, 64, 500])
def test_block_size_does_not_change_result(block):
    gen = torch.Generator().manual_seed(block)
    q, k, v, lengths = _random_case(gen, 2, 2, 97, 8)
    out = truncated_attention(q, k, v, 11, 4, lengths, block=block)
    ref = dense_reference(q, k, v, 11, 4, lengths)
    valid = _valid(lengths, 97)[:, None, :, None]
    assert ((out - ref) * valid).abs().max().item() <= 1e-5


@PATHS
def test_matches_literal_per_query_loop(block):
    gen = torch.Generator().manual_seed(3)
    for left, right in [(5, 2), (0, 7), (12, 0), (None, None)]:
        q, k, v, lengths = _random_case(gen, 2, 2, 41, 8)
        out = truncated_attention(q, k, v, left, right, lengths, block=block).double()
        ref = loop_reference(q, k, v, left, right, lengths)
        assert (out - ref).abs().max().item() <= 1e-5, (left, right)


@PATHS
def test_random_shapes_and_windows(block):
    gen = torch.Generator().manual_seed(11)
    for _ in range(25):
        batch = int(torch.randint(1, 4, (1,), generator=gen))
        heads = int(torch.randint(1, 4, (1,), generator=gen))
        time = int(torch.randint(1, 200, (1,), generator=gen))
        dim = int(torch.randint(1, 5, (1,), generator=gen)) * 4
        left = int(torch.randint(0, 70, (1,), generator=gen))
        right = int(torch.randint(0, 30, (1,), generator=gen))
        q, k, v, lengths = _random_case(gen, batch, heads, time, dim)
        out = truncated_attention(q, k, v, left, right, lengths, block=block)
        ref = dense_reference(q, k, v, left, right, lengths)
        valid = _valid(lengths, time)[:, None, :, None]
        assert ((out - ref) * valid).abs().max().item() <= 1e-5, (batch, heads, time, dim, left, right)


def test_extra_padding_never_changes_valid_outputs():
    gen = torch.Generator().manual_seed(5)
    q, k, v, _ = _random_case(gen, 1, 2, 60, 8)
    base = truncated_attention(q, k, v, 9, 3)
    for extra in (1, 17, 100):
        garbage = [torch.randn(1, 2, extra, 8, generator=gen) * 100 for _ in range(3)]
        qp, kp, vp = (torch.cat([x, g], dim=2) for x, g in zip((q, k, v), garbage))
        out = truncated_attention(qp, kp, vp, 9, 3, torch.tensor([60]))
        assert (out[:, :, :60] - base).abs().max().item() <= 1e-6
        assert out[:, :, 60:].abs().max().item() == 0.0


@PATHS
def test_gradients_match_dense_reference(block):
    gen = torch.Generator().manual_seed(7)
    q, k, v, lengths = _random_case(gen, 2, 2, 70, 8)
    valid = _valid(lengths, 70)[:, None, :, None].float()
    weight = torch.randn(2, 2, 70, 8, generator=gen)
    grads = []
    for fn in (lambda *a: truncated_attention(*a, block=block), dense_reference):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        out = fn(*leaves, 6, 2, lengths)
        (out * valid * weight).sum().backward()
        grads.append([x.grad for x in leaves])
    for ours, ref in zip(*grads):
        assert torch.isfinite(ours).all()
        assert (ours - ref).abs().max().item() <= 1e-5


def test_short_training_sequences_take_the_plain_dense_path(monkeypatch):
    """With gradients on CPU, a short sequence uses neither the banded kernel nor masked SDPA
    (both are 2-3x slower there, benchmarks/attention_short.py); a long one uses the banded kernel."""

    def refuse(*args, **kwargs):
        raise AssertionError("slow path taken")

    gen = torch.Generator().manual_seed(9)
    q, k, v, lengths = _random_case(gen, 2, 2, DENSE_MAX_FRAMES, 8)
    ref = dense_reference(q, k, v, 32, 4, lengths)
    monkeypatch.setattr(attention_module, "_banded_attention", refuse)
    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", refuse)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out = truncated_attention(*leaves, 32, 4, lengths)
    out.sum().backward()
    valid = _valid(lengths, DENSE_MAX_FRAMES)[:, None, :, None]
    assert ((out.detach() - ref) * valid).abs().max().item() <= 1e-5
    q, k, v, lengths = _random_case(gen, 1, 1, DENSE_MAX_FRAMES + 1, 8)
    with pytest.raises(AssertionError, match="slow path"):
        truncated_attention(q.requires_grad_(), k, v, 32, 4, lengths)


@pytest.mark.parametrize("width, step", [(68, 32), (37, 16), (16, 16), (40, 7)])
def test_window_gradient_equals_unfold_backward(width, step):
    from speechattn.nn.attention import _Windows

    gen = torch.Generator().manual_seed(width)
    flat = torch.randn(width + 9 * step, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    windows = _Windows.apply(flat, width, step)
    reference = flat.unfold(0, width, step).transpose(1, 2)
    assert torch.equal(windows, reference)
    weight = torch.randn(reference.shape, generator=gen, dtype=torch.float64)
    ours = torch.autograd.grad((windows * weight).sum(), flat)[0]
    ref = torch.autograd.grad((reference * weight).sum(), flat)[0]
    assert (ours - ref).abs().max().item() <= 1e-12


def test_gradcheck_double():
    gen = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(1, 2, 13, 4, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))
    lengths = torch.tensor([11])
    assert torch.autograd.gradcheck(lambda a, b, c: truncated_attention(a, b, c, 3, 2, lengths, block=4), (q, k, v))


def test_long_sequence_processed_in_groups():
    # Enough rows x frames to need several groups of the memory budget.
    gen = torch.Generator().manual_seed(13)
    q, k, v = (torch.randn(2, 4, 6000, 16, generator=gen) for _ in range(3))
    lengths = torch.tensor([6000, 4321])
    with torch.no_grad():
        out = truncated_attention(q, k, v, 16, 4, lengths)
    for t in (0, 1, 2999, 4320, 5999):
        b = 1 if t == 4320 else 0
        lo, hi = max(0, t - 16), min(int(lengths[b]), t + 5)
        scores = k[b, :, lo:hi] @ q[b, :, t, :, None] / 4.0
        ref = (torch.softmax(scores[..., 0], dim=-1)[..., None] * v[b, :, lo:hi]).sum(1)
        assert (out[b, :, t] - ref).abs().max().item() <= 1e-5
    assert out[1, :, 4321:].abs().max().item() == 0.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(left=-1, right=2), "left"),
        (dict(left=2, right=1.5), "right"),
        (dict(left=2, right=2, lengths=torch.tensor([5, 5, 5])), "lengths"),
        (dict(left=2, right=2, lengths=torch.tensor([99, 1])), "lengths"),
        (dict(left=2, right=2, block=0), "block"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    q = torch.randn(2, 1, 10, 4)
    with pytest.raises(ValueError, match=match):
        truncated_attention(q, q, q, **kwargs)


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="4-D"):
        truncated_attention(torch.randn(2, 10, 4), torch.randn(2, 10, 4), torch.randn(2, 10, 4), 1, 1)
    with pytest.raises(ValueError, match="self-attention"):
        truncated_attention(torch.randn(1, 1, 10, 4), torch.randn(1, 1, 9, 4), torch.randn(1, 1, 9, 4), 1, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA path: needs a GPU")
def test_cuda_path_matches_cpu_reference():  # pragma: no cover - GPU machines only
    gen = torch.Generator().manual_seed(17)
    q, k, v, lengths = _random_case(gen, 2, 4, 3000, 64)
    ref = truncated_attention(q, k, v, 32, 8, lengths)
    out = truncated_attention(q.cuda(), k.cuda(), v.cuda(), 32, 8, lengths.cuda()).cpu()
    valid = _valid(lengths, 3000)[:, None, :, None]
    assert ((out - ref) * valid).abs().max().item() <= 1e-4
