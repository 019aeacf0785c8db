"""Verification metrics against hand-computed cases and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechattn.metrics.verification import compute_eer, compute_min_dcf, det_curve, identification_accuracy


def _brute_rates(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fpr/fnr by direct counting at each threshold (accept when score >= threshold)."""
    fpr, fnr = [], []
    for t in thresholds:
        fpr.append(sum(1 for s, y in zip(scores, labels, strict=False) if not y and s >= t) / (labels == 0).sum())
        fnr.append(sum(1 for s, y in zip(scores, labels, strict=False) if y and s < t) / (labels == 1).sum())
    return np.array(fpr), np.array(fnr)


def random_trials(seed: int, n: int = 300, sep: float = 1.0, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    labels[:2] = [0, 1]
    scores = rng.normal(size=n) + sep * labels
    if ties:
        scores = np.round(scores, 1)
    return scores, labels


# --------------------------------------------------------------------------- EER


@pytest.mark.parametrize(
    ("scores", "labels", "eer", "threshold"),
    [
        # t=.5: fnr 1/2 fpr 2/3; t=.7: fnr 1/2 fpr 1/3 -> crossing halfway: eer 1/2 at 0.6
        ([0.9, 0.3, 0.7, 0.5, 0.1], [1, 1, 0, 0, 0], 0.5, 0.6),
        # tie at 0.5: t=.5: fnr 0 fpr 1/2; t=1: fnr 1/2 fpr 0 -> eer 1/4 at 0.75
        ([0.5, 1.0, 0.5, 0.0], [1, 1, 0, 0], 0.25, 0.75),
        # exact crossing at an operating point: t=2: fnr 1/2 = fpr 1/2
        ([3, 1, 2, 0], [1, 1, 0, 0], 0.5, 2.0),
        # perfectly separated: eer 0 at the lowest target score
        ([0.8, 0.9, 0.1, 0.2, 0.3], [1, 1, 0, 0, 0], 0.0, 0.8),
        # perfectly reversed: every decision is wrong
        ([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], 1.0, 0.8),
        # all scores equal: eer 1/2 (threshold: the only finite one)
        ([1.0, 1.0, 1.0], [1, 0, 0], 0.5, 1.0),
    ],
)
def test_eer_hand_computed(scores, labels, eer, threshold) -> None:
    got_eer, got_thr = compute_eer(scores, labels)
    assert got_eer == pytest.approx(eer, abs=1e-12)
    assert got_thr == pytest.approx(threshold, abs=1e-12)


def test_eer_of_perfect_separation_is_zero_and_random_scores_about_half() -> None:
    rng = np.random.default_rng(123)
    labels = rng.integers(0, 2, 4000)
    assert compute_eer(rng.normal(size=4000) + 10.0 * labels, labels)[0] == 0.0
    eer, _ = compute_eer(rng.normal(size=4000), labels)
    assert abs(eer - 0.5) < 0.04
    eer_good, _ = compute_eer(rng.normal(size=4000) + 2.0 * labels, labels)
    # two unit Gaussians 2 apart: EER = Phi(-1) = 0.1587
    assert eer_good == pytest.approx(0.5 * math.erfc(1 / math.sqrt(2)), abs=0.02)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_det_and_eer_match_brute_force(seed: int, ties: bool) -> None:
    scores, labels = random_trials(seed, ties=ties)
    fpr, fnr, thr = det_curve(scores, labels)
    assert np.all(np.diff(thr) > 0) and thr[-1] == np.inf
    np.testing.assert_array_equal(thr[:-1], np.unique(scores))
    bf_fpr, bf_fnr = _brute_rates(scores, labels, thr)
    np.testing.assert_allclose(fpr, bf_fpr)
    np.testing.assert_allclose(fnr, bf_fnr)
    assert (fpr[0], fnr[0], fpr[-1], fnr[-1]) == (1.0, 0.0, 0.0, 1.0)

    eer, eer_thr = compute_eer(scores, labels)
    # between the best "min" and "max" of the two error rates over all operating points
    assert np.max(np.minimum(bf_fpr, bf_fnr)) - 1e-12 <= eer <= np.min(np.maximum(bf_fpr, bf_fnr)) + 1e-12
    # independent crossing: densely parametrise the piecewise-linear ROC path
    t = np.linspace(0, 1, 2001)[:, None]
    path_fpr = (bf_fpr[:-1] + t * np.diff(bf_fpr)).T.ravel()
    path_fnr = (bf_fnr[:-1] + t * np.diff(bf_fnr)).T.ravel()
    k = np.argmin(np.abs(path_fpr - path_fnr))
    assert eer == pytest.approx(path_fnr[k], abs=2e-3)
    # the threshold sits between the operating points that bracket the crossing
    accept = scores >= eer_thr
    fa = (accept & (labels == 0)).sum() / (labels == 0).sum()
    miss = (~accept & (labels == 1)).sum() / (labels == 1).sum()
    assert min(fa, miss) - 1e-12 <= eer <= max(fa, miss) + 0.05


@pytest.mark.parametrize("seed", range(3))
def test_eer_matches_sklearn_roc_curve(seed: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    scores, labels = random_trials(seed, n=500, ties=seed == 2)
    fpr, tpr, _ = metrics.roc_curve(labels, scores, pos_label=1)
    # the standard "brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x))" crossing, by bisection
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if 1.0 - mid - np.interp(mid, fpr, tpr) > 0 else (lo, mid)
    assert compute_eer(scores, labels)[0] == pytest.approx(lo, abs=1e-9)


def test_eer_is_invariant_to_monotone_transforms_and_input_types() -> None:
    scores, labels = random_trials(7)
    eer, thr = compute_eer(scores, labels)
    eer2, thr2 = compute_eer(torch.tensor(3.0 * scores - 1.0), torch.tensor(labels.astype(bool)))
    assert eer2 == pytest.approx(eer) and thr2 == pytest.approx(3.0 * thr - 1.0)
    assert compute_eer(np.exp(scores).tolist(), labels.tolist())[0] == pytest.approx(eer)


# --------------------------------------------------------------------------- minDCF


def test_min_dcf_hand_computed() -> None:
    # targets 3, 1; non-targets 2, 0. Operating points (threshold: fnr, fpr):
    # 0: 0, 1 | 1: 0, .5 | 2: .5, .5 | 3: .5, 0 | inf: 1, 0
    scores, labels = [3, 1, 2, 0], [1, 1, 0, 0]
    # p=0.01: DCF = .01 fnr + .99 fpr -> .99, .495, .5, .005, .01; c_def = .01
    assert compute_min_dcf(scores, labels, p_target=0.01) == pytest.approx((0.5, 3.0))
    # p=0.5, c_miss=3: DCF = 1.5 fnr + .5 fpr -> .5, .25, 1, .75, 1.5; c_def = min(1.5, .5)
    assert compute_min_dcf(scores, labels, p_target=0.5, c_miss=3.0) == pytest.approx((0.5, 1.0))
    # p=0.9: DCF = .9 fnr + .1 fpr -> .1, .05, .5, .45, .9; c_def = .1
    assert compute_min_dcf(scores, labels, p_target=0.9) == pytest.approx((0.5, 1.0))
    # rejecting everything can be optimal: p=0.001, one bad target
    md, thr = compute_min_dcf([0.0, 1.0], [1, 0], p_target=0.001)
    assert md == pytest.approx(1.0) and thr == math.inf


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("p_target", [0.01, 0.05, 0.5])
def test_min_dcf_matches_brute_force_threshold_sweep(seed: int, p_target: float) -> None:
    scores, labels = random_trials(seed, n=200, sep=1.5, ties=seed == 1)
    u = np.unique(scores)
    candidates = np.concatenate([[-np.inf], (u[:-1] + u[1:]) / 2, u, [np.inf]])
    fpr, fnr = _brute_rates(scores, labels, candidates)
    dcf = p_target * fnr + (1 - p_target) * fpr
    expected = dcf.min() / min(p_target, 1 - p_target)
    got, thr = compute_min_dcf(scores, labels, p_target=p_target)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= got <= 1.0
    # the returned threshold really achieves it
    t_fpr, t_fnr = _brute_rates(scores, labels, np.array([thr]))
    assert (p_target * t_fnr[0] + (1 - p_target) * t_fpr[0]) / min(p_target, 1 - p_target) == pytest.approx(got)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call",
    [
        lambda: compute_eer([0.1, 0.2], [1, 1]),
        lambda: compute_eer([0.1, 0.2], [0, 0]),
        lambda: compute_eer([0.1, 0.2, 0.3], [0, 1]),
        lambda: compute_eer([0.1, float("nan")], [0, 1]),
        lambda: compute_eer([0.1, 0.2], [0, 2]),
        lambda: compute_eer([[0.1, 0.2]], [[0, 1]]),
        lambda: compute_eer(["a", "b"], [0, 1]),
        lambda: compute_min_dcf([0.1, 0.2], [0, 1], p_target=0.0),
        lambda: compute_min_dcf([0.1, 0.2], [0, 1], c_fa=-1.0),
    ],
)
def test_bad_scores_or_labels_raise(call) -> None:
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------- identification


def test_identification_accuracy() -> None:
    m = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.4, 0.4, 0.1], [0.1, 0.2, 0.3]])
    y = np.array([0, 1, 1, 2])
    # row 0 right; row 1 true class 2nd; row 2 tie broken towards index 0 (wrong); row 3 right
    assert identification_accuracy(m, y) == pytest.approx(0.5)
    assert identification_accuracy(torch.tensor(m), torch.tensor(y), top_k=2) == pytest.approx(1.0)
    assert identification_accuracy(m, np.array([2, 0, 0, 0]), top_k=1) == pytest.approx(0.25)
    for bad in ([0, 1, 1], [0, 1, 1, 3], [0.0, 1.0, 1.0, 2.0]):
        with pytest.raises(ValueError):
            identification_accuracy(m, np.array(bad))
    with pytest.raises(ValueError):
        identification_accuracy(m, y, top_k=4)
