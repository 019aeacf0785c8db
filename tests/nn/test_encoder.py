"""TruncatedEncoder: shapes, padding invariance, streaming == offline, contexts, config errors."""

from __future__ import annotations

import random

import pytest
import torch

from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder
from speechattn.nn.multihead import MultiHeadSelfAttention
from speechattn.nn.positional import LearnedPositionalEncoding, RotaryEmbedding, SinusoidalPositionalEncoding
from speechattn.nn.subsampling import Subsampling


def _encoder(**kw) -> TruncatedEncoder:
    args = dict(input_dim=20, d_model=32, num_heads=4, num_layers=3, ffn_dim=64, left_context=6, right_context=2)
    args.update(kw)
    torch.manual_seed(0)
    return TruncatedEncoder(**args).eval()


@pytest.mark.parametrize("subsampling", [1, 2, 4])
def test_shapes_and_lengths(subsampling):
    enc = _encoder(subsampling=subsampling)
    x = torch.randn(3, 101, 20)
    lengths = torch.tensor([101, 50, 9])
    y, out_lengths = enc(x, lengths)
    expected = enc.output_lengths(lengths)
    assert y.shape == (3, int(expected.max()), 32)
    assert out_lengths.tolist() == expected.tolist()
    for b in range(3):
        assert y[b, int(out_lengths[b]) :].abs().max().item() == 0.0 if out_lengths[b] < y.shape[1] else True


@pytest.mark.parametrize("subsampling", [1, 2, 4])
@pytest.mark.parametrize("positional", ["rotary", "sinusoidal", "learned", "none"])
def test_padding_never_changes_valid_outputs(subsampling, positional):
    enc = _encoder(subsampling=subsampling, positional=positional)
    gen = torch.Generator().manual_seed(1)
    short = torch.randn(1, 40, 20, generator=gen)
    alone, n = enc(short)
    padded = torch.cat([short, 50 * torch.randn(1, 33, 20, generator=gen)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 73, 20, generator=gen)], dim=0)
    together, lengths = enc(batch, torch.tensor([40, 73]))
    assert int(lengths[0]) == int(n[0])
    assert (together[0, : int(n[0])] - alone[0]).abs().max().item() <= 1e-5


def test_output_depends_only_on_the_window():
    # One layer, left=3, right=1: output t must not change when frames outside t-3..t+1 change.
    enc = _encoder(num_layers=1, left_context=3, right_context=1, positional="rotary")
    x = torch.randn(1, 30, 20)
    y, _ = enc(x)
    x2 = x.clone()
    x2[:, :10] += 5.0
    x2[:, 16:] -= 5.0
    y2, _ = enc(x2)
    # frames 13 and 14 see 10..14 and 11..15: all unchanged
    assert (y[:, 13:15] - y2[:, 13:15]).abs().max().item() <= 1e-5
    assert (y[:, 9] - y2[:, 9]).abs().max().item() > 1e-3


def stream_in_chunks(enc: TruncatedEncoder, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """``x`` pushed through ``enc.stream()`` in chunks of ``chunk`` frames, then flushed."""
    stream = enc.stream()
    parts = [stream.push(x[:, i : i + chunk]) for i in range(0, x.shape[1], chunk)]
    return torch.cat([*parts, stream.flush()], dim=1)


def _stream(enc: TruncatedEncoder, x: torch.Tensor, rng: random.Random, max_chunk: int) -> torch.Tensor:
    stream = enc.stream()
    outs, t = [], 0
    while t < x.shape[1]:
        c = rng.randint(1, max_chunk)
        outs.append(stream.push(x[:, t : t + c]))
        t += c
    outs.append(stream.flush())
    return torch.cat(outs, dim=1)


def _assert_streams_like_offline(enc: TruncatedEncoder, x: torch.Tensor, max_chunks=(1, 7, 40, 400),
                                 seed: int = 0) -> torch.Tensor:
    """Stream ``x`` in random chunks of at most each of ``max_chunks`` frames and check every
    stream against the offline call; returns the offline output."""
    rng = random.Random(seed)
    with torch.no_grad():
        offline, _ = enc(x)
        for max_chunk in max_chunks:
            streamed = _stream(enc, x, rng, max_chunk)
            assert streamed.shape == offline.shape
            assert (streamed - offline).abs().max().item() <= 1e-5
    return offline


@pytest.mark.parametrize(
    "kw",
    [
        dict(subsampling=1, positional="rotary"),
        dict(subsampling=2, positional="sinusoidal", left_context=[4, 6, None], right_context=[1, 0, 3]),
        dict(subsampling=4, positional="learned", left_context=5, right_context=3),
        dict(subsampling=1, positional="none", left_context=0, right_context=0),
    ],
)
def test_streaming_equals_offline_for_random_chunks(kw):
    _assert_streams_like_offline(_encoder(**kw), torch.randn(2, 157, 20))


def test_streaming_memory_is_bounded_by_chunk_and_cache():
    enc = _encoder(left_context=6, right_context=2)
    stream = enc.stream()
    with torch.no_grad():
        for _ in range(50):
            stream.push(torch.randn(1, 20, 20))
            for state in stream.layers:
                assert state.keys.shape[2] <= 6 + 20 + 2 * 3  # left cache + chunk + pending
                assert state.queries.shape[2] <= 2 * 3 + 20
    assert stream.frames_out >= 50 * 20 - stream.lookahead_frames


def test_streaming_lookahead_is_fixed():
    enc = _encoder(right_context=[1, 2, 3], subsampling=1)
    stream = enc.stream()
    with torch.no_grad():
        out = stream.push(torch.randn(1, 100, 20))
    assert stream.lookahead_frames == 6
    assert out.shape[1] == 100 - 6


def test_streaming_needs_finite_right_context():
    enc = _encoder(right_context=None)
    with pytest.raises(ValueError, match="right_context"):
        enc.stream()


def test_stream_after_flush_raises():
    enc = _encoder()
    stream = enc.stream()
    stream.push(torch.randn(1, 10, 20))
    stream.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        stream.push(torch.randn(1, 10, 20))


def test_gradients_flow_to_all_parameters():
    enc = _encoder(subsampling=2, positional="learned", dropout=0.1).train()
    y, lengths = enc(torch.randn(2, 60, 20), torch.tensor([60, 41]))
    y.pow(2).sum().backward()
    missing = [name for name, p in enc.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_from_config_round_trip():
    cfg = EncoderConfig(input_dim=40, d_model=64, num_heads=2, num_layers=2, ffn_dim=128, subsampling=4)
    enc = TruncatedEncoder.from_config(cfg)
    assert enc.config == cfg
    assert enc(torch.randn(1, 50, 40))[0].shape == (1, 11, 64)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(d_model=30, num_heads=4), "divisible"),
        (dict(subsampling=3), "subsampling"),
        (dict(positional="absolute"), "positional"),
        (dict(left_context=[1, 2]), "left_context"),
        (dict(right_context=-1), "right_context"),
        (dict(dropout=1.5), "dropout"),
        (dict(activation="tanh"), "activation"),
        (dict(num_layers=0), "num_layers"),
    ],
)
def test_bad_config_raises_value_error(kw, match):
    with pytest.raises(ValueError, match=match):
        _encoder(**kw)


def test_wrong_feature_dim_raises():
    with pytest.raises(ValueError, match="20"):
        _encoder()(torch.randn(1, 10, 21))


def test_learned_positions_refuse_too_long_input():
    enc = _encoder(positional="learned", max_len=50)
    with pytest.raises(ValueError, match="max_len"):
        enc(torch.randn(1, 51, 20))


def test_rotary_scores_depend_only_on_distance():
    rope = RotaryEmbedding(8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    s1 = (rope(q, 10) * rope(k, 7)).sum()
    s2 = (rope(q, 1003) * rope(k, 1000)).sum()
    assert abs(s1.item() - s2.item()) <= 1e-3
    assert abs(s1.item() - (rope(q, 10) * rope(k, 2)).sum().item()) > 1e-4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rotary_low_precision_path_matches_float64(dtype):
    # Low precision uses x * cos + swap(x) * sin; the reference is the complex rotation in float64.
    rope = RotaryEmbedding(16)
    x = torch.randn(2, 3, 4, 40, 16)
    ref = rope(x.double(), 5)
    pairs = torch.view_as_complex(x.double().unflatten(-1, (-1, 2)).contiguous())
    angles = torch.arange(5, 45, dtype=torch.float64)[:, None] * rope.inv_freq.double()[None, :]
    assert torch.allclose(torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).flatten(-2), ref, atol=1e-5)
    low = rope(x.to(dtype), 5)
    assert low.dtype == dtype
    assert (low.double() - ref).abs().max().item() <= 0.02 * ref.abs().max().item()


def test_sinusoidal_offset_matches_slice():
    pe = SinusoidalPositionalEncoding(16)
    x = torch.zeros(1, 30, 16)
    assert torch.allclose(pe(x)[:, 10:], pe(x[:, 10:], offset=10), atol=1e-6)
    with pytest.raises(ValueError):
        SinusoidalPositionalEncoding(15)
    with pytest.raises(ValueError):
        LearnedPositionalEncoding(0)


def test_subsampling_receptive_field_is_exact():
    sub = Subsampling(20, 16, factor=4).eval()
    x = torch.randn(1, 40, 20)
    y, _ = sub(x)
    x2 = x.clone()
    x2[:, 7:] += 3.0  # output 0 uses frames 0..6 only
    y2, _ = sub(x2)
    assert torch.allclose(y[:, 0], y2[:, 0])
    assert not torch.allclose(y[:, 1], y2[:, 1])
    assert sub.output_lengths(torch.tensor([0, 6, 7, 40])).tolist() == [0, 0, 1, 9]


def test_multihead_attention_rejects_bad_heads():
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadSelfAttention(10, 3, 2, 2)


@pytest.mark.parametrize("subsampling", [1, 4])
def test_inference_path_equals_training_path(subsampling, monkeypatch):
    # eval + no_grad takes the chunked, in-place path; it must compute the same function.
    import speechattn.nn.layers as layers_module

    monkeypatch.setattr(layers_module, "_INFERENCE_ROWS", 64)  # force several chunks
    enc = _encoder(subsampling=subsampling)
    x = torch.randn(2, 300, 20)
    lengths = torch.tensor([300, 211])
    with torch.no_grad():
        fast, n_fast = enc(x, lengths)
    slow, n_slow = enc(x, lengths)  # grad enabled: the plain path
    assert torch.equal(n_fast, n_slow)
    assert (fast - slow.detach()).abs().max().item() <= 1e-5
    assert not x.isnan().any()


@pytest.mark.parametrize("subsampling", [1, 4])
def test_long_inputs_stream_in_chunks_with_offline_results(subsampling):
    enc = _encoder(subsampling=subsampling)
    x = torch.randn(1, 500, 20)
    with torch.no_grad():
        plain, n_plain = enc(x)
        chunked = stream_in_chunks(enc, x, 64)
    assert chunked.shape[1] == int(n_plain[0])
    assert (plain - chunked).abs().max().item() <= 1e-5
