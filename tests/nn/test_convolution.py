"""Optional Conformer-style convolution module: config, padding, streaming == offline, gradients."""

from __future__ import annotations

import random

import pytest
import torch

from speechattn.nn.convolution import ConvModule, depthwise_conv
from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder
from tests.nn.test_encoder import _assert_streams_like_offline, _stream


def _encoder(**kw) -> TruncatedEncoder:
    args = dict(input_dim=20, d_model=32, num_heads=4, num_layers=3, ffn_dim=64, left_context=6, right_context=2)
    args.update(kw)
    torch.manual_seed(0)
    return TruncatedEncoder(**args).eval()


@pytest.mark.parametrize("kernel", [1, 2, 4, -3, 3.0, True, "3"])
def test_bad_conv_kernel_raises_value_error(kernel):
    with pytest.raises(ValueError, match="conv_kernel"):
        EncoderConfig(conv_kernel=kernel)
    with pytest.raises(ValueError, match="conv_kernel"):
        _encoder(conv_kernel=kernel)


def test_conv_module_rejects_bad_kernel():
    for kernel in (0, 1, 4):
        with pytest.raises(ValueError, match="kernel_size"):
            ConvModule(8, kernel)


def test_default_has_no_conv_and_unchanged_state_dict_keys():
    assert EncoderConfig().conv_kernel == 0
    plain = _encoder()
    assert all(layer.conv is None for layer in plain.layers)
    assert not any("conv" in key for key in plain.state_dict())
    # The keys of a checkpoint written before the convolution module existed.
    expected = {"subsampling.proj.weight", "subsampling.proj.bias", "norm.weight", "norm.bias"}
    for i in range(3):
        for name in ("attn_norm", "ffn_norm"):
            expected |= {f"layers.{i}.{name}.weight", f"layers.{i}.{name}.bias"}
        for name in ("attn.qkv", "attn.out", "ffn.net.0", "ffn.net.3"):
            expected |= {f"layers.{i}.{name}.weight", f"layers.{i}.{name}.bias"}
    assert set(plain.state_dict()) == expected
    with_conv = _encoder(conv_kernel=3)
    assert set(with_conv.state_dict()) > expected
    assert with_conv.config.conv_kernel == 3
    with_conv.load_state_dict(with_conv.state_dict())


def test_from_config_passes_conv_kernel():
    cfg = EncoderConfig(input_dim=20, d_model=32, num_heads=4, num_layers=2, ffn_dim=64, conv_kernel=5)
    enc = TruncatedEncoder.from_config(cfg)
    assert enc.config == cfg
    assert all(layer.conv is not None and layer.conv.kernel_size == 5 for layer in enc.layers)


def test_conv_module_shapes_and_parameter_count():
    conv = ConvModule(256, 15)
    x = torch.randn(2, 9, 256)
    assert conv(x).shape == (2, 9, 256)
    assert conv(x, torch.tensor([9, 4])).shape == (2, 9, 256)
    # 2 LayerNorms (4D) + Linear(D, 2D) + depthwise (D*K + D) + Linear(D, D)
    d, k = 256, 15
    assert sum(p.numel() for p in conv.parameters()) == 4 * d + (2 * d * d + 2 * d) + (d * k + d) + (d * d + d)


@pytest.mark.parametrize("subsampling", [1, 4])
@pytest.mark.parametrize("kernel", [3, 15])
def test_padding_never_leaks_through_the_convolution(subsampling, kernel):
    enc = _encoder(subsampling=subsampling, conv_kernel=kernel)
    gen = torch.Generator().manual_seed(1)
    short = torch.randn(1, 40, 20, generator=gen)
    padded = torch.cat([short, 50 * torch.randn(1, 33, 20, generator=gen)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 73, 20, generator=gen)], dim=0)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            alone, n = enc(short)
            together, lengths = enc(batch, torch.tensor([40, 73]))
        assert int(lengths[0]) == int(n[0])
        assert (together[0, : int(n[0])] - alone[0]).abs().max().item() <= 1e-5


def test_convolution_changes_outputs_within_its_span_only():
    # One layer, attention sees only itself (left=right=0), kernel 5: frame t depends on t-2..t+2.
    enc = _encoder(num_layers=1, left_context=0, right_context=0, conv_kernel=5)
    x = torch.randn(1, 30, 20)
    with torch.no_grad():
        y, _ = enc(x)
        x2 = x.clone()
        x2[:, 18] += 5.0
        y2, _ = enc(x2)
    diff = (y - y2).abs().amax(dim=-1)[0]
    assert diff[:16].max().item() <= 1e-6 and diff[21:].max().item() <= 1e-6
    assert diff[16].item() > 1e-4 and diff[20].item() > 1e-4


@pytest.mark.parametrize("kernel", [3, 15])
@pytest.mark.parametrize(
    "kw",
    [
        dict(subsampling=1, positional="rotary"),
        dict(subsampling=4, positional="learned", left_context=5, right_context=3),
        dict(subsampling=1, positional="none", left_context=[4, 0, None], right_context=[1, 0, 3]),
    ],
)
def test_streaming_with_convolution_equals_offline(kw, kernel):
    enc = _encoder(conv_kernel=kernel, **kw)
    x = torch.randn(2, 157, 20)
    offline = _assert_streams_like_offline(enc, x)
    rng = random.Random(0)
    with torch.no_grad():
        # Whole input in one chunk, and a sequence shorter than the kernel.
        stream = enc.stream()
        whole = torch.cat([stream.push(x), stream.flush()], dim=1)
        assert (whole - offline).abs().max().item() <= 1e-5
        short = x[:, : 5 * enc.subsampling.stride + 3]
        assert (_stream(enc, short, rng, 2) - enc(short)[0]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("subsampling", [1, 4])
def test_streaming_lookahead_counts_the_convolution(subsampling):
    enc = _encoder(right_context=[1, 2, 3], subsampling=subsampling, conv_kernel=5)
    stream = enc.stream()
    sub = enc.subsampling
    with torch.no_grad():
        out = stream.push(torch.randn(1, 400, 20))
    assert stream.lookahead_frames == (6 + 3 * 2) * sub.stride + sub.receptive_field - 1
    assert out.shape[1] == int(enc.output_lengths(torch.tensor([400]))[0]) - (6 + 3 * 2)


def test_streaming_convolution_memory_is_bounded():
    enc = _encoder(conv_kernel=7)
    stream = enc.stream()
    with torch.no_grad():
        for _ in range(50):
            stream.push(torch.randn(1, 20, 20))
            for state in stream.layers:
                assert state.gates.shape[1] <= 2 * 3 + 20 + 3 * (2 + 3)
                assert state.conv_pending.shape[1] <= 3 + 20 + 3 * (2 + 3)
                assert state.keys.shape[2] <= 6 + 20 + 3 * (2 + 3)
    assert stream.frames_out >= 50 * 20 - stream.lookahead_frames


def test_finish_refuses_a_conv_layer():
    layer = _encoder(conv_kernel=3).layers[0]
    with pytest.raises(RuntimeError, match="convolution"):
        layer.finish(torch.zeros(1, 2, 32), torch.zeros(1, 2, 32))


def test_gradients_flow_to_all_parameters_with_convolution():
    enc = _encoder(subsampling=2, positional="learned", dropout=0.1, conv_kernel=5).train()
    y, _ = enc(torch.randn(2, 60, 20), torch.tensor([60, 41]))
    y.pow(2).sum().backward()
    names = [name for name, _ in enc.named_parameters()]
    assert any(".conv.depthwise." in name for name in names)
    missing = [name for name, p in enc.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("subsampling", [1, 4])
def test_long_inputs_stream_in_chunks_with_convolution(subsampling):
    from tests.nn.test_encoder import stream_in_chunks

    enc = _encoder(subsampling=subsampling, conv_kernel=15)
    x = torch.randn(2, 500, 20)
    with torch.no_grad():
        plain, n_plain = enc(x)
        chunked = stream_in_chunks(enc, x, 64)
    assert chunked.shape[1] == int(n_plain[0])
    assert (plain - chunked).abs().max().item() <= 1e-5


def test_docstrings_mention_conv_kernel():
    assert "conv_kernel" in (TruncatedEncoder.__doc__ or "")
    assert "conv_kernel" in (EncoderConfig.__doc__ or "")


def _depthwise_reference(x, weight, bias):
    return torch.nn.functional.conv1d(x.transpose(1, 2), weight, bias, groups=x.shape[2]).transpose(1, 2)


@pytest.mark.parametrize("with_bias", [True, False])
def test_depthwise_conv_matches_conv1d_with_gradients(with_bias):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 40, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(6, 1, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64) if with_bias else None
    up = torch.randn(3, 36, 6, generator=gen, dtype=torch.float64)
    results = []
    for fn in (depthwise_conv, _depthwise_reference):
        leaves = [t.clone().requires_grad_() for t in (x, w) + ((b,) if with_bias else ())]
        y = fn(leaves[0], leaves[1], leaves[2] if with_bias else None)
        (y * up).sum().backward()
        results.append([y.detach()] + [t.grad for t in leaves])
    for ours, ref in zip(*results):
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max().item() <= 1e-10
    leaves = [t.clone().requires_grad_() for t in (x, w) + ((b,) if with_bias else ())]
    assert torch.autograd.gradcheck(lambda *a: depthwise_conv(a[0], a[1], a[2] if with_bias else None), leaves)


def test_depthwise_conv_in_bf16_autocast_is_as_close_as_conv1d():
    """Gradients come back in the parameters' dtype and as close to float32 as nn.Conv1d's."""
    gen = torch.Generator().manual_seed(2)
    conv = torch.nn.Conv1d(64, 64, 15, groups=64)
    x = torch.randn(8, 74, 64, generator=gen)
    up = torch.randn(8, 60, 64, generator=gen)

    def grads(fn, bf16):
        conv.zero_grad()
        xi = (x.bfloat16() if bf16 else x).clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = fn(xi, conv.weight, conv.bias)
        y.float().backward(up)
        return [xi.grad.float(), conv.weight.grad.clone(), conv.bias.grad.clone()]

    exact = grads(_depthwise_reference, False)
    for ours, theirs, ref in zip(grads(depthwise_conv, True), grads(_depthwise_reference, True), exact):
        assert ours.dtype == ref.dtype
        scale = ref.abs().max().item()
        assert (ours - ref).abs().max().item() <= 2 * max((theirs - ref).abs().max().item(), 1e-3 * scale)


def test_depthwise_conv_rejects_bad_shapes():
    with pytest.raises(ValueError, match="weight"):
        depthwise_conv(torch.zeros(1, 10, 4), torch.zeros(3, 1, 3))
    with pytest.raises(ValueError, match="fewer than the kernel"):
        depthwise_conv(torch.zeros(1, 2, 4), torch.zeros(4, 1, 3))
