"""Subsampling: the channels-last training computation equals the plain Conv2d stack (which
inference uses), values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from speechattn.nn.subsampling import Subsampling


def _reference(sub: Subsampling, x: Tensor) -> Tensor:
    """The textbook layout: Conv2d stack on (batch, 1, time, F), channels-first flatten, Linear."""
    h = sub.conv(x.unsqueeze(1))  # (batch, channels, time', freq')
    b, c, t, f = h.shape
    return sub.proj(h.transpose(1, 2).reshape(b, t, c * f))


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("time, input_dim", [(101, 80), (7, 23), (48, 9)])
def test_values_and_gradients_equal_the_conv2d_stack(factor, time, input_dim):
    torch.manual_seed(factor * 1000 + time)
    sub = Subsampling(input_dim, 32, factor=factor, channels=8)
    x = torch.randn(3, time, input_dim)
    y, _ = sub(x)
    ref = _reference(sub, x)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # inference takes the plain stack: the same values
        torch.testing.assert_close(sub(x)[0], y.detach(), rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(y)
    got = torch.autograd.grad(y, list(sub.parameters()), grad)
    want = torch.autograd.grad(ref, list(sub.parameters()), grad)
    for (name, _), g, w in zip(sub.named_parameters(), got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=name)


def test_input_gradient_and_bf16_autocast():
    torch.manual_seed(0)
    sub = Subsampling(40, 32, factor=4, channels=16)
    x = torch.randn(2, 60, 40, requires_grad=True)
    (gx,) = torch.autograd.grad(sub(x)[0].sum(), x)
    (rx,) = torch.autograd.grad(_reference(sub, x).sum(), x)
    torch.testing.assert_close(gx, rx, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, ref = sub(x)[0], _reference(sub, x)
    assert low.dtype == torch.bfloat16
    err, scale = float((low - ref).detach().float().abs().max()), float(ref.detach().float().abs().max())
    assert err < 0.05 * scale


def test_weights_keep_the_conv2d_layout():
    """Checkpoints keep loading: the parameters are still those of Conv2d and Linear layers."""
    sub = Subsampling(80, 256, factor=4, channels=64)
    shapes = {k: tuple(v.shape) for k, v in sub.state_dict().items()}
    assert shapes == {"conv.0.weight": (64, 1, 3, 3), "conv.0.bias": (64,), "conv.2.weight": (64, 64, 3, 3),
                      "conv.2.bias": (64,), "proj.weight": (256, 64 * 19), "proj.bias": (256,)}
    assert isinstance(sub.conv[0], nn.Conv2d) and isinstance(sub.conv[2], nn.Conv2d)
