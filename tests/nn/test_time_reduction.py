"""Time reduction: layers ``time_reduce_at .. time_recover_at - 1`` of the encoder at half rate."""

from __future__ import annotations

import pytest
import torch

from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder
from speechattn.nn.layers import double_rate, halve_rate
from tests.nn.test_encoder import _assert_streams_like_offline


def _encoder(**kw) -> TruncatedEncoder:
    torch.manual_seed(0)
    base = dict(input_dim=20, d_model=32, num_heads=4, num_layers=4, ffn_dim=64, left_context=6, right_context=2,
                dropout=0.0, time_reduce_at=1, time_recover_at=3)
    base.update(kw)
    return TruncatedEncoder(**base).eval()


@pytest.mark.parametrize(
    "reduce_at, recover_at, match",
    [(1, None, "both"), (None, 3, "both"), (True, 3, "both"), (2, 2, "0 <= time_reduce_at"),
     (-1, 2, "0 <= time_reduce_at"), (1, 5, "num_layers")],
)
def test_bad_time_reduction_raises_value_error(reduce_at, recover_at, match):
    with pytest.raises(ValueError, match=match):
        EncoderConfig(num_layers=4, time_reduce_at=reduce_at, time_recover_at=recover_at)


def test_time_reduction_adds_no_parameters():
    plain = _encoder(time_reduce_at=None, time_recover_at=None)
    reduced = _encoder()
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in reduced.state_dict().items()}
    assert list(plain.half_rate) == [] and list(reduced.half_rate) == [1, 2]


def test_halve_and_double_rate():
    x = torch.arange(10.0).view(1, 5, 2)
    y, lengths = halve_rate(x, torch.tensor([5]))
    assert y.tolist() == [[[1.0, 2.0], [5.0, 6.0], [4.0, 4.5]]]  # the odd last frame with a zero frame
    assert lengths.tolist() == [3]
    assert double_rate(y, 5)[0, :, 0].tolist() == [1.0, 1.0, 5.0, 5.0, 4.0]


def test_half_rate_layers_see_half_the_frames_and_the_skip_is_added_back():
    enc = _encoder(subsampling=1)
    x = torch.randn(2, 41, 20)
    seen = []
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.append((i[0].shape[1], i[1].tolist())))
             for layer in enc.layers]
    with torch.no_grad():
        y, lengths = enc(x, torch.tensor([41, 30]))
    for h in hooks:
        h.remove()
    assert [s[0] for s in seen] == [41, 21, 21, 41]
    assert [s[1] for s in seen] == [[41, 30], [21, 15], [21, 15], [41, 30]]
    # The same computation by hand, for the first utterance.
    with torch.no_grad():
        h0, n = enc.embed(x[:1], torch.tensor([41]))
        h0 = enc.layers[0](h0, n)
        half, m = halve_rate(h0, n)
        half = enc.layers[2](enc.layers[1](half, m), m)
        h = enc.layers[3](h0 + double_rate(half, 41), n)
        expected = enc.norm(h)
    assert (y[0] - expected[0]).abs().max().item() <= 1e-5
    assert lengths.tolist() == [41, 30]


@pytest.mark.parametrize("conv_kernel", [0, 5])
@pytest.mark.parametrize("length", [40, 41])
def test_padding_does_not_leak_into_the_half_rate_layers(conv_kernel, length):
    enc = _encoder(conv_kernel=conv_kernel, conv_norm="batch", subsampling=1)
    gen = torch.Generator().manual_seed(1)
    short = torch.randn(1, length, 20, generator=gen)
    alone, _ = enc(short)
    padded = torch.cat([short, 50 * torch.randn(1, 77 - length, 20, generator=gen)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 77, 20, generator=gen)], dim=0)
    together, lengths = enc(batch, torch.tensor([length, 77]))
    assert lengths.tolist() == [length, 77]
    assert (together[0, :length] - alone[0]).abs().max().item() <= 1e-5
    assert together[0, length:].abs().max().item() == 0.0


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(time_reduce_at=0, time_recover_at=4, subsampling=4),
        dict(time_reduce_at=2, time_recover_at=4, conv_kernel=5, conv_norm="batch", subsampling=4),
        dict(time_reduce_at=1, time_recover_at=2, conv_kernel=3, left_context=[6, 3, None, 2],
             right_context=[1, 2, 0, 3]),
    ],
)
@pytest.mark.parametrize("frames", [157, 158])
def test_streaming_equals_offline_with_time_reduction(kw, frames):
    _assert_streams_like_offline(_encoder(**kw), torch.randn(2, frames, 20), (1, 2, 9, 400))


@pytest.mark.parametrize("subsampling", [1, 4])
def test_streaming_lookahead_counts_half_rate_frames_twice(subsampling):
    enc = _encoder(right_context=[1, 2, 3, 1], conv_kernel=5, subsampling=subsampling)
    stream = enc.stream()
    sub = enc.subsampling
    # Full-rate layers 0 and 3: (1 + 2) + (1 + 2); half-rate layers 1 and 2: 2 x ((2 + 2) + (3 + 2));
    # and the first frame of a pair waits for the second.
    frames = 3 + 3 + 2 * 9 + 1
    assert stream.lookahead_frames == frames * sub.stride + sub.receptive_field - 1
    with torch.no_grad():
        out = stream.push(torch.randn(1, 400, 20))
    total = int(enc.output_lengths(torch.tensor([400]))[0])
    assert total - frames <= out.shape[1] <= total - frames + 1  # + 1 when the last pair is complete


def test_streaming_memory_is_bounded_with_time_reduction():
    enc = _encoder(conv_kernel=5)
    stream = enc.stream()
    with torch.no_grad():
        for _ in range(50):
            stream.push(torch.randn(1, 20, 20))
            assert stream.reduction.skip.shape[1] <= 20 + stream.lookahead_frames
            for state in stream.layers:
                assert state.keys is None or state.keys.shape[2] <= 6 + 20 + stream.lookahead_frames
    assert stream.frames_out >= 50 * 20 - stream.lookahead_frames


def test_flush_without_input_gives_no_frames():
    enc = _encoder()
    with torch.no_grad():
        assert enc.stream().flush().shape[1] == 0
        stream = enc.stream()
        first = stream.push(torch.randn(2, 1, 20))
        assert first.shape == (2, 0, 32) and stream.flush().shape == (2, 1, 32)


def test_long_inputs_stream_through_the_half_rate_layers():
    from tests.nn.test_encoder import stream_in_chunks

    enc = _encoder(conv_kernel=5)
    x = torch.randn(1, 301, 20)
    with torch.no_grad():
        direct, _ = enc(x)
        chunked = stream_in_chunks(enc, x, 64)
    assert chunked.shape == direct.shape
    assert (chunked - direct).abs().max().item() <= 1e-5


def test_gradients_reach_every_layer_with_time_reduction():
    enc = _encoder(conv_kernel=3, conv_norm="batch").train()
    y, _ = enc(torch.randn(2, 60, 20), torch.tensor([60, 37]))
    y.pow(2).sum().backward()
    missing = [name for name, p in enc.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
