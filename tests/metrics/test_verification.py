"""Verification metrics against hand-computed cases and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechattn.metrics import (
    Trial,
    all_pairs_trials,
    as_norm,
    as_norm_from_scores,
    compute_eer,
    compute_min_dcf,
    cosine_score_matrix,
    det_curve,
    identification_accuracy,
    plot_det,
    read_trials,
)


def _brute_rates(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fpr/fnr by direct counting at each threshold (accept when score >= threshold)."""
    fpr, fnr = [], []
    for t in thresholds:
        fpr.append(sum(1 for s, y in zip(scores, labels, strict=False) if not y and s >= t) / (labels == 0).sum())
        fnr.append(sum(1 for s, y in zip(scores, labels, strict=False) if y and s < t) / (labels == 1).sum())
    return np.array(fpr), np.array(fnr)


def _random_trials(seed: int, n: int = 300, sep: float = 1.0, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
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
    scores, labels = _random_trials(seed, ties=ties)
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
    scores, labels = _random_trials(seed, n=500, ties=seed == 2)
    fpr, tpr, _ = metrics.roc_curve(labels, scores, pos_label=1)
    # the standard "brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x))" crossing, by bisection
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if 1.0 - mid - np.interp(mid, fpr, tpr) > 0 else (lo, mid)
    assert compute_eer(scores, labels)[0] == pytest.approx(lo, abs=1e-9)


def test_eer_is_invariant_to_monotone_transforms_and_input_types() -> None:
    scores, labels = _random_trials(7)
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
    scores, labels = _random_trials(seed, n=200, sep=1.5, ties=seed == 1)
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


# --------------------------------------------------------------------------- errors, DET plot


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


def test_plot_det_writes_png(tmp_path) -> None:
    scores, labels = _random_trials(0, n=400, sep=2.0)
    out = plot_det(scores, labels, tmp_path / "sub" / "det.png", title="dev")
    data = out.read_bytes()
    assert out == tmp_path / "sub" / "det.png"
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


# --------------------------------------------------------------------------- scoring, trials


def test_cosine_score_matrix_values_and_types() -> None:
    a = np.array([[1.0, 0.0], [3.0, 3.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, -1.0]])
    expected = np.array([[1.0, 0.0], [math.sqrt(0.5), -math.sqrt(0.5)], [0.0, 0.0]])
    got = cosine_score_matrix(a, b)
    assert isinstance(got, np.ndarray) and got.shape == (3, 2)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    got_t = cosine_score_matrix(torch.tensor(a, dtype=torch.float32), torch.tensor(b))
    assert isinstance(got_t, torch.Tensor) and got_t.shape == (3, 2)
    np.testing.assert_allclose(got_t.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError):
        cosine_score_matrix(a, np.ones((2, 3)))


def _brute_pairs(spk: list) -> set[tuple[int, int, bool]]:
    return {(i, j, spk[i] == spk[j]) for i in range(len(spk)) for j in range(i + 1, len(spk))}


def test_all_pairs_trials_enumerates_every_unordered_pair() -> None:
    spk = ["a", "b", "a", "c", "b", "a"]
    i, j, target = all_pairs_trials(spk)
    assert i.size == 15 and target.dtype == bool and (i < j).all()
    assert set(zip(i.tolist(), j.tolist(), target.tolist(), strict=False)) == _brute_pairs(spk)
    assert target.sum() == 3 + 1  # C(3,2) for "a", 1 for "b"
    assert list(zip(i.tolist(), j.tolist(), strict=False)) == sorted(zip(i.tolist(), j.tolist(), strict=False))
    # a cap above the number of non-target pairs keeps everything
    assert all_pairs_trials(spk, max_nontarget=11)[0].size == 15


@pytest.mark.parametrize("n", [60, 2100])  # enumeration path and rejection-sampling path
def test_all_pairs_trials_cap_keeps_all_targets(n: int) -> None:
    rng = np.random.default_rng(0)
    spk = rng.integers(0, n // 3, n)
    i, j, target = all_pairs_trials(spk, max_nontarget=500, seed=3)
    n_target = sum(c * (c - 1) // 2 for c in np.unique(spk, return_counts=True)[1])
    assert target.sum() == n_target and (~target).sum() == 500
    assert (i < j).all() and np.array_equal(target, spk[i] == spk[j])
    assert len(set(zip(i.tolist(), j.tolist(), strict=False))) == i.size  # no duplicate pairs
    again = all_pairs_trials(spk, max_nontarget=500, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((i, j, target), again, strict=False))
    other = all_pairs_trials(spk, max_nontarget=500, seed=4)
    assert not np.array_equal(i[~target], other[0][~other[2]]) or not np.array_equal(j[~target], other[1][~other[2]])
    # the subsample spreads over the utterances rather than clustering at low indices
    assert np.median(np.concatenate([i[~target], j[~target]])) == pytest.approx(n / 2, rel=0.2)


def test_all_pairs_trials_torch_labels_and_bad_cap() -> None:
    i, j, target = all_pairs_trials(torch.tensor([0, 0, 1]))
    assert target.tolist() == [True, False, False]
    with pytest.raises(ValueError):
        all_pairs_trials([0, 1, 2], max_nontarget=-1)
    with pytest.raises(ValueError):
        all_pairs_trials([0, 1, 2], max_nontarget=1.5)  # type: ignore[arg-type]


def test_read_trials(tmp_path) -> None:
    path = tmp_path / "trials.txt"
    path.write_text(
        "# enroll test label\nspk1/u1 spk1/u2 target\n\nspk1/u1 spk2/u1 nontarget\n a b 1\nc\td 0\nx y TARGET\n"
    )
    assert read_trials(path) == [
        Trial("spk1/u1", "spk1/u2", True),
        Trial("spk1/u1", "spk2/u1", False),
        Trial("a", "b", True),
        Trial("c", "d", False),
        Trial("x", "y", True),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a b target\na b\n", r"trials.txt:2: expected 3 fields"),
        ("a b target\na b c d\n", r"trials.txt:2: expected 3 fields"),
        ("a b yes\n", r"trials.txt:1: label must be"),
        ("1 a b\n", r"trials.txt:1: .*VoxCeleb"),
        ("# only a comment\n\n", r"no trials"),
    ],
)
def test_read_trials_errors_name_file_and_line(tmp_path, text: str, match: str) -> None:
    path = tmp_path / "trials.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_trials(path)


def test_read_trials_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        read_trials(tmp_path / "nope.txt")


# --------------------------------------------------------------------------- AS-Norm


def _as_norm_reference(s, e, t, k):
    out = []
    for p in range(len(s)):
        te = np.sort(e[p])[::-1][:k]
        tt = np.sort(t[p])[::-1][:k]
        out.append(0.5 * ((s[p] - te.mean()) / te.std() + (s[p] - tt.mean()) / tt.std()))
    return np.array(out)


def test_as_norm_from_scores_matches_reference_and_is_affine_invariant() -> None:
    rng = np.random.default_rng(0)
    s, e, t = rng.normal(size=20), rng.normal(size=(20, 50)), rng.normal(size=(20, 50))
    ref = _as_norm_reference(s, e, t, 10)
    np.testing.assert_allclose(as_norm_from_scores(s, e, t, top_k=10), ref, rtol=1e-10)
    # an affine shift (a > 0) of every score, raw and cohort alike, changes nothing
    shifted = as_norm_from_scores(2.5 * s - 0.7, 2.5 * e - 0.7, 2.5 * t - 0.7, top_k=10)
    np.testing.assert_allclose(shifted, ref, rtol=1e-9)
    # ...but shifting the cohort alone does
    assert not np.allclose(as_norm_from_scores(s, e + 0.3, t + 0.3, top_k=10), ref)
    # top_k larger than the cohort uses the whole cohort
    np.testing.assert_allclose(as_norm_from_scores(s, e, t, top_k=1000), _as_norm_reference(s, e, t, 50), rtol=1e-10)


def test_as_norm_with_embeddings() -> None:
    rng = np.random.default_rng(1)
    enroll, test, cohort = rng.normal(size=(30, 8)), rng.normal(size=(30, 8)), rng.normal(size=(40, 8))
    scores = (cosine_score_matrix(enroll, test)).diagonal().copy()
    got = as_norm(scores, enroll, test, cohort, top_k=5, chunk_size=7)
    ref = _as_norm_reference(scores, cosine_score_matrix(enroll, cohort), cosine_score_matrix(test, cohort), 5)
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    # cosine scoring: rotating every embedding and rescaling some changes nothing
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    scale = rng.uniform(0.5, 2.0, size=(30, 1))
    rotated = as_norm(scores, scale * enroll @ q, test @ q, cohort @ q, top_k=5)
    np.testing.assert_allclose(rotated, ref, rtol=1e-9)
    # cohort members far from every embedding are outside every top-5 and have no effect
    pos_e, pos_t, pos_c = np.abs(enroll), np.abs(test), np.abs(cohort)  # pairwise cosines >= 0
    pos_s = cosine_score_matrix(pos_e, pos_t).diagonal().copy()
    far = -np.abs(rng.normal(size=(10, 8)))  # cosine < 0 with all of them
    base = as_norm(pos_s, pos_e, pos_t, pos_c, top_k=5)
    with_far = np.concatenate([pos_c, far])
    extra = as_norm(torch.tensor(pos_s), torch.tensor(pos_e), torch.tensor(pos_t), with_far, top_k=5)
    np.testing.assert_allclose(extra, base, rtol=1e-9)
    assert not np.allclose(as_norm(pos_s, pos_e, pos_t, with_far, top_k=45), base)
    assert not np.allclose(as_norm(scores, enroll, test, cohort, top_k=20), ref)


@pytest.mark.parametrize(
    "call",
    [
        lambda: as_norm_from_scores(np.zeros(3), np.zeros((3, 5)), np.zeros((3, 5)), top_k=1),
        lambda: as_norm_from_scores(np.zeros(3), np.zeros((2, 5)), np.zeros((3, 5))),
        lambda: as_norm_from_scores(np.zeros(3), np.zeros((3, 1)), np.zeros((3, 1))),
        lambda: as_norm(np.zeros(3), np.zeros((3, 4)), np.zeros((3, 4)), np.zeros((5, 3))),
        lambda: as_norm(np.zeros(3), np.zeros((3, 4)), np.zeros((3, 4)), np.ones((5, 4)), chunk_size=0),
    ],
)
def test_as_norm_bad_arguments(call) -> None:
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
