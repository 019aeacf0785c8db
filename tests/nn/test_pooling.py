"""Pooling layers: shapes, padding invariance, single-frame inputs, gradients, builder."""

from __future__ import annotations

import pytest
import torch

from speechattn.nn.pooling import (
    AttentiveStatsPooling,
    MeanStdPooling,
    SelfAttentionPooling,
    build_pooling,
)

DIM = 6


def _make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "mean_std":
        return MeanStdPooling(DIM)
    if name == "attentive":
        return AttentiveStatsPooling(DIM, attention_dim=8)
    if name == "attentive_local":
        return AttentiveStatsPooling(DIM, attention_dim=8, global_context=False)
    if name == "self_attention":
        layer = SelfAttentionPooling(DIM, num_heads=3, hidden_dim=5)
    else:
        layer = SelfAttentionPooling(DIM)
    # zero-initialised scorers would make every weighting uniform; randomise so that the
    # tests exercise non-trivial attention
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0.0, 1.0)
    return layer


ALL = ["mean_std", "attentive", "attentive_local", "self_attention", "self_attention_1head"]
EXPECTED_DIM = {"mean_std": 2 * DIM, "attentive": 2 * DIM, "attentive_local": 2 * DIM,
                "self_attention": 3 * DIM, "self_attention_1head": DIM}


@pytest.mark.parametrize("name", ALL)
def test_output_shape_and_output_dim(name: str) -> None:
    layer = _make(name)
    out = layer(torch.randn(4, 9, DIM), torch.tensor([9, 3, 1, 5]))
    assert layer.output_dim == EXPECTED_DIM[name]
    assert out.shape == (4, EXPECTED_DIM[name])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("train", [False, True])
def test_garbage_padding_has_no_effect(name: str, train: bool) -> None:
    layer = _make(name).train(train)
    torch.manual_seed(1)
    lengths = torch.tensor([7, 2, 1, 5])
    x = torch.randn(4, 7, DIM)
    padded = torch.cat([x, torch.randn(4, 6, DIM) * 1e3], dim=1)  # 6 extra frames per row
    for b, n in enumerate(lengths.tolist()):
        padded[b, n:] = torch.randn(13 - n, DIM) * 1e3 + 50.0
    padded[1, 4] = float("nan")
    padded[2, 3] = float("inf")
    ref = layer(x, lengths)
    out = layer(padded, lengths)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    # and each row equals the unpadded single-utterance result
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b], layer(x[b : b + 1, :n])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_lengths_none_means_all_frames(name: str) -> None:
    layer = _make(name)
    x = torch.randn(3, 5, DIM)
    torch.testing.assert_close(layer(x), layer(x, torch.tensor([5, 5, 5])))
    # a shorter length must change the result (the masking is not a no-op)
    assert not torch.allclose(layer(x)[0], layer(x, torch.tensor([3, 5, 5]))[0])


@pytest.mark.parametrize("name", ALL)
def test_gradients_flow_to_valid_frames_and_parameters_only(name: str) -> None:
    layer = _make(name)
    x = torch.randn(2, 6, DIM, requires_grad=True)
    lengths = torch.tensor([6, 1])
    layer(x, lengths).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad[0].abs().sum() > 0 and x.grad[1, 0].abs().sum() > 0
    assert (x.grad[1, 1:] == 0).all()
    for p in layer.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_mean_std_matches_reference_and_is_safe_for_one_frame() -> None:
    layer = MeanStdPooling(DIM)
    x = torch.randn(2, 8, DIM, dtype=torch.float64)
    out = layer(x, torch.tensor([8, 3]))
    torch.testing.assert_close(out[0, :DIM], x[0].mean(0))
    torch.testing.assert_close(out[0, DIM:], x[0].std(0, unbiased=False))
    torch.testing.assert_close(out[1, DIM:], x[1, :3].std(0, unbiased=False))
    one = torch.randn(1, 1, DIM, requires_grad=True)
    y = layer(one, torch.tensor([1]))
    torch.testing.assert_close(y[0, :DIM], one[0, 0].detach())
    torch.testing.assert_close(y[0, DIM:], torch.full((DIM,), 1e-5).sqrt())  # clamped variance
    y.sum().backward()
    assert torch.isfinite(one.grad).all()


def test_attentive_pooling_weights_frames_and_is_permutation_invariant() -> None:
    layer = _make("attentive")
    x = torch.randn(1, 10, DIM)
    out = layer(x)
    torch.testing.assert_close(layer(x[:, torch.randperm(10)]), out)
    # learned weights: the result differs from plain statistics pooling
    assert not torch.allclose(out, MeanStdPooling(DIM)(x), atol=1e-3)
    # stds are computed from the same weights: constant frames give the clamped floor
    const = layer(torch.ones(1, 4, DIM) * 3.0)
    torch.testing.assert_close(const, torch.cat([torch.full((1, DIM), 3.0), torch.full((1, DIM), 1e-5**0.5)], dim=1))


def test_self_attention_starts_as_mean_and_heads_are_head_major() -> None:
    torch.manual_seed(0)
    fresh = SelfAttentionPooling(DIM, num_heads=2)
    x = torch.randn(3, 7, DIM)
    lengths = torch.tensor([7, 4, 1])
    out = fresh(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :DIM], x[b, :n].mean(0))
        torch.testing.assert_close(out[b, DIM:], x[b, :n].mean(0))
    # with a large score on frame 2 for head 1 only, head 1 picks that frame
    with torch.no_grad():
        fresh.score[0].weight.zero_()
        fresh.score[0].bias.zero_()
    x2 = x.clone()
    x2[:, 2, 0] = 100.0
    with torch.no_grad():
        fresh.score[0].weight[1, 0] = 1.0
    out2 = fresh(x2)
    torch.testing.assert_close(out2[:, DIM:], x2[:, 2])
    torch.testing.assert_close(out2[:, :DIM], x2.mean(1))


@pytest.mark.parametrize(
    "call",
    [
        lambda: MeanStdPooling(0),
        lambda: MeanStdPooling(3.0),  # type: ignore[arg-type]
        lambda: AttentiveStatsPooling(4, attention_dim=0),
        lambda: AttentiveStatsPooling(4, global_context=1),  # type: ignore[arg-type]
        lambda: SelfAttentionPooling(4, num_heads=0),
        lambda: SelfAttentionPooling(4, hidden_dim=-1),
        lambda: MeanStdPooling(4)(torch.randn(2, 5, 3)),
        lambda: MeanStdPooling(4)(torch.randn(5, 4)),
        lambda: MeanStdPooling(4)(torch.randn(2, 5, 4), torch.tensor([5, 0])),
        lambda: MeanStdPooling(4)(torch.randn(2, 5, 4), torch.tensor([5, 6])),
        lambda: MeanStdPooling(4)(torch.randn(2, 5, 4), torch.tensor([5])),
        lambda: MeanStdPooling(4)(torch.randn(2, 5, 4), torch.tensor([1.0, 0.5])),
    ],
)
def test_bad_arguments_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_build_pooling() -> None:
    assert isinstance(build_pooling("mean_std", 4), MeanStdPooling)
    att = build_pooling("attentive", 4, attention_dim=16)
    assert isinstance(att, AttentiveStatsPooling) and att.attention_dim == 16
    sap = build_pooling("self_attention", 4, num_heads=2)
    assert isinstance(sap, SelfAttentionPooling) and sap.output_dim == 8
    with pytest.raises(ValueError, match="mean_std, attentive, self_attention"):
        build_pooling("max", 4)
