"""Cosine scoring and AS-Norm against hand-computed cases and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechattn.metrics.scoring import as_norm, as_norm_from_scores, cosine_score_matrix

# --------------------------------------------------------------------------- cosine scoring


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
