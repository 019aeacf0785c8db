"""Macaron feed-forward and per-block LayerNorm options of the encoder layer."""

from __future__ import annotations

import pytest
import torch

from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder
from speechattn.nn.layers import FeedForward
from tests.nn.test_encoder import _assert_streams_like_offline


def _encoder(**kw) -> TruncatedEncoder:
    torch.manual_seed(0)
    base = dict(input_dim=20, d_model=32, num_heads=4, num_layers=3, ffn_dim=64, left_context=6, right_context=2,
                dropout=0.0)
    base.update(kw)
    return TruncatedEncoder(**base).eval()


@pytest.mark.parametrize("name", ["macaron", "block_norm"])
def test_options_must_be_booleans(name):
    with pytest.raises(ValueError, match=name):
        EncoderConfig(**{name: 1})


def test_defaults_add_no_parameters():
    plain = _encoder()
    keys = set(plain.state_dict())
    assert not any("pre_ffn" in k or "out_norm" in k for k in keys)
    both = _encoder(macaron=True, block_norm=True)
    extra = set(both.state_dict()) - keys
    assert {k.split(".", 2)[2].split(".")[0] for k in extra} == {"pre_ffn_norm", "pre_ffn", "out_norm"}
    assert set(both.state_dict()) >= keys
    assert both.config.macaron and both.config.block_norm


def test_macaron_block_computes_the_conformer_order():
    enc = _encoder(num_layers=1, macaron=True, block_norm=True)
    layer = enc.layers[0]
    x = torch.randn(2, 30, 32)
    with torch.no_grad():
        h = x + 0.5 * layer.pre_ffn(layer.pre_ffn_norm(x))
        h = h + layer.attn(layer.attn_norm(h))
        h = h + 0.5 * layer.ffn(layer.ffn_norm(h))
        expected = layer.out_norm(h)
        with torch.enable_grad():  # the training path
            trained = layer(x)
        inferred = layer(x)  # the chunked inference path
    assert (trained - expected).abs().max().item() <= 1e-5
    assert (inferred - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("conv_kernel", [0, 5])
@pytest.mark.parametrize("subsampling", [1, 4])
def test_streaming_equals_offline_with_macaron_and_block_norm(conv_kernel, subsampling):
    enc = _encoder(macaron=True, block_norm=True, conv_kernel=conv_kernel, subsampling=subsampling)
    _assert_streams_like_offline(enc, torch.randn(2, 157, 20), (1, 9, 400))


def test_padding_does_not_leak_with_macaron_and_block_norm():
    enc = _encoder(macaron=True, block_norm=True, conv_kernel=3)
    x = torch.randn(2, 73, 20)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            alone, _ = enc(x[:1, :40])
            together, _ = enc(x, torch.tensor([40, 73]))
        assert (together[0, :40] - alone[0]).abs().max().item() <= 1e-5


def test_gradients_reach_the_new_modules():
    enc = _encoder(macaron=True, block_norm=True).train()
    y, _ = enc(torch.randn(2, 50, 20), torch.tensor([50, 33]))
    y.pow(2).sum().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_bad_conv_norm_raises_value_error():
    with pytest.raises(ValueError, match="conv_norm"):
        EncoderConfig(conv_kernel=3, conv_norm="group")


def _trained_batchnorm_encoder(**kw) -> TruncatedEncoder:
    enc = _encoder(conv_kernel=5, conv_norm="batch", **kw).train()
    with torch.no_grad():  # a few training-mode passes give the running statistics real values
        for _ in range(3):
            enc(torch.randn(3, 90, 20) * 2 + 1, torch.tensor([90, 70, 41]))
    return enc.eval()


def test_batchnorm_statistics_ignore_padding_in_training():
    enc = _encoder(conv_kernel=5, conv_norm="batch").train()
    x = torch.randn(2, 60, 20)
    lengths = torch.tensor([60, 37])
    noisy = x.clone()
    noisy[1, 37:] = 100.0 * torch.randn(23, 20)
    y1, _ = enc(x, lengths)
    y2, _ = enc(noisy, lengths)
    assert (y1[1, :37] - y2[1, :37]).abs().max().item() <= 1e-4
    assert (y1[0] - y2[0]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("subsampling", [1, 4])
def test_streaming_equals_offline_with_batchnorm(subsampling):
    enc = _trained_batchnorm_encoder(subsampling=subsampling, macaron=True)
    assert enc.layers[0].conv.conv_norm.running_var.sub(1).abs().max().item() > 1e-3
    x = torch.randn(2, 157, 20)
    _assert_streams_like_offline(enc, x, (1, 9, 400), seed=1)
    with torch.no_grad():
        alone, n = enc(x[:1, :90])
        together, _ = enc(x, torch.tensor([90, 157]))
    assert (together[0, : int(n[0])] - alone[0]).abs().max().item() <= 1e-5


def test_swiglu_feed_forward_gates_two_halves():
    torch.manual_seed(0)
    ffn = FeedForward(8, 6, activation="swiglu")
    first, last = ffn.net[0], ffn.net[3]
    assert first.out_features == 12 and last.in_features == 6
    x = torch.randn(2, 5, 8)
    a, b = first(x).split(6, dim=-1)
    expected = last(torch.nn.functional.silu(a) * b)
    torch.testing.assert_close(ffn(x), expected)
    # the gate matters: swapping the halves changes the output
    swapped = last(torch.nn.functional.silu(b) * a)
    assert not torch.allclose(ffn(x), swapped)


def test_feed_forward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        FeedForward(8, 6, activation="tanh")


@pytest.mark.parametrize("conv_kernel", [0, 5])
def test_streaming_equals_offline_with_swiglu(conv_kernel):
    enc = _encoder(activation="swiglu", conv_kernel=conv_kernel, conv_norm="batch", subsampling=4)
    _assert_streams_like_offline(enc, torch.randn(2, 157, 20), (1, 9, 400))
