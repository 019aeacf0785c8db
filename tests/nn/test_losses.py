"""AAM-softmax and softmax heads: logits, margin handling, gradients, builder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from speechattn.nn.losses import AAMSoftmax, SoftmaxLoss, build_loss


def _cosines(head: AAMSoftmax, emb: torch.Tensor) -> torch.Tensor:
    return F.normalize(emb.double(), dim=1) @ F.normalize(head.weight.detach().double(), dim=1).T


def test_aam_logits_are_scaled_cos_and_cos_theta_plus_m_for_target() -> None:
    torch.manual_seed(0)
    head = AAMSoftmax(16, 10, margin=0.3, scale=20.0)
    emb = torch.randn(32, 16)
    labels = torch.randint(0, 10, (32,))
    loss, logits = head(emb, labels)
    cos = _cosines(head, emb)
    theta = torch.arccos(cos)
    assert (theta[torch.arange(32), labels] + 0.3 < math.pi).all()  # ordinary regime only
    target = F.one_hot(labels, 10).bool()
    expected = torch.where(target, 20.0 * torch.cos(theta + 0.3), 20.0 * cos)
    torch.testing.assert_close(logits.double(), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loss.double(), F.cross_entropy(expected, labels), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(head.cosine(emb).double(), cos, rtol=1e-5, atol=1e-5)
    # the margin makes the target logit strictly smaller than the margin-free one
    assert (logits[target] < 20.0 * cos[target].float()).all()


def _head_with_target_at_angle(
    theta: float, margin: float, easy_margin: bool = False
) -> tuple[AAMSoftmax, torch.Tensor]:
    head = AAMSoftmax(2, 2, margin=margin, scale=1.0, easy_margin=easy_margin)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    emb = torch.tensor([[math.cos(theta), math.sin(theta)]])
    return head, emb


@pytest.mark.parametrize("theta", [0.2, 1.0, 2.5, 2.9, 3.1])
def test_aam_target_logit_beyond_pi_minus_m_falls_back_to_monotone_penalty(theta: float) -> None:
    m = 0.5
    head, emb = _head_with_target_at_angle(theta, m)
    _, logits = head(emb, torch.tensor([0]))
    if theta + m <= math.pi:
        expected = math.cos(theta + m)
    else:  # insightface / WeSpeaker: cos(theta) - m*sin(m)
        expected = math.cos(theta) - m * math.sin(m)
    assert logits[0, 0].item() == pytest.approx(expected, abs=1e-5)
    assert logits[0, 1].item() == pytest.approx(math.sin(theta), abs=1e-5)  # cos to class 1


def test_aam_target_logit_is_monotone_decreasing_in_theta() -> None:
    values = []
    for theta in torch.linspace(0.01, math.pi - 0.01, 200).tolist():
        head, emb = _head_with_target_at_angle(theta, 0.5)
        values.append(head(emb, torch.tensor([0]))[1][0, 0].item())
    diffs = torch.diff(torch.tensor(values))
    assert (diffs < 0).all()


def test_aam_easy_margin_only_applies_for_positive_cosine() -> None:
    head, emb = _head_with_target_at_angle(2.0, 0.4, easy_margin=True)  # cos < 0
    assert head(emb, torch.tensor([0]))[1][0, 0].item() == pytest.approx(math.cos(2.0), abs=1e-5)
    head, emb = _head_with_target_at_angle(1.0, 0.4, easy_margin=True)
    assert head(emb, torch.tensor([0]))[1][0, 0].item() == pytest.approx(math.cos(1.4), abs=1e-5)


def test_aam_margin_is_settable_for_warmup() -> None:
    head, emb = _head_with_target_at_angle(1.0, 0.2)
    before = head(emb, torch.tensor([0]))[1][0, 0].item()
    head.margin = 0.0
    assert head.margin == 0.0
    assert head(emb, torch.tensor([0]))[1][0, 0].item() == pytest.approx(math.cos(1.0), abs=1e-5)
    head.margin = 0.35
    assert head(emb, torch.tensor([0]))[1][0, 0].item() == pytest.approx(math.cos(1.35), abs=1e-5)
    assert before == pytest.approx(math.cos(1.2), abs=1e-5)
    with pytest.raises(ValueError):
        head.margin = -0.1
    with pytest.raises(ValueError):
        head.margin = 2.0
    assert head.margin == 0.35  # a rejected value leaves the margin unchanged


@pytest.mark.parametrize("head_cls", [AAMSoftmax, SoftmaxLoss])
def test_gradients_flow_and_training_reduces_loss(head_cls) -> None:
    torch.manual_seed(0)
    head = head_cls(8, 4)
    emb = torch.randn(16, 8, requires_grad=True)
    labels = torch.arange(16) % 4
    loss, logits = head(emb, labels)
    assert loss.dim() == 0 and logits.shape == (16, 4)
    loss.backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    for p in head.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    opt = torch.optim.SGD([emb, *head.parameters()], lr=0.5)
    first = loss.item()
    for _ in range(30):
        opt.zero_grad()
        loss, _ = head(emb, labels)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_aam_gradient_is_finite_when_embedding_is_parallel_to_a_class() -> None:
    head = AAMSoftmax(4, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 4))
    emb = torch.tensor([[0.0, 2.0, 0.0, 0.0]], requires_grad=True)  # cos = 1 exactly to class 1
    loss, _ = head(emb, torch.tensor([1]))
    loss.backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


def test_softmax_loss_is_linear_plus_cross_entropy() -> None:
    torch.manual_seed(0)
    head = SoftmaxLoss(5, 3)
    emb, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 2, 1, 0])
    loss, logits = head(emb, labels)
    torch.testing.assert_close(logits, emb @ head.linear.weight.T + head.linear.bias)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))


@pytest.mark.parametrize(
    "call",
    [
        lambda: AAMSoftmax(0, 3),
        lambda: AAMSoftmax(4, 0),
        lambda: AAMSoftmax(4, 3, scale=0.0),
        lambda: AAMSoftmax(4, 3, margin=-0.2),
        lambda: SoftmaxLoss(4, 1.5),  # type: ignore[arg-type]
        lambda: AAMSoftmax(4, 3)(torch.randn(2, 5), torch.tensor([0, 1])),
        lambda: AAMSoftmax(4, 3)(torch.randn(2, 4), torch.tensor([0, 3])),
        lambda: AAMSoftmax(4, 3)(torch.randn(2, 4), torch.tensor([0])),
        lambda: SoftmaxLoss(4, 3)(torch.randn(2, 4), torch.tensor([0.0, 1.0])),
        lambda: SoftmaxLoss(4, 3)(torch.randn(2, 4), torch.tensor([-1, 1])),
        lambda: build_loss("triplet", 4, 3),
    ],
)
def test_bad_arguments_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_build_loss() -> None:
    aam = build_loss("aam_softmax", 8, 5, margin=0.1, scale=10.0)
    assert isinstance(aam, AAMSoftmax) and aam.margin == 0.1 and aam.scale == 10.0
    assert isinstance(build_loss("aam", 8, 5), AAMSoftmax)
    assert isinstance(build_loss("softmax", 8, 5), SoftmaxLoss)
    with pytest.raises(ValueError, match="aam_softmax"):
        build_loss("arcface2", 8, 5)


def test_aam_margin_arithmetic_stays_float32_under_autocast() -> None:
    torch.manual_seed(0)
    head = AAMSoftmax(16, 6)
    emb, labels = torch.randn(5, 16), torch.tensor([0, 1, 2, 3, 4])
    ref_loss, ref_logits = head(emb, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logits = head(emb, labels)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(loss, ref_loss)
