"""Scoring speaker embeddings: cosine score matrices and adaptive score normalisation (AS-Norm).

See :mod:`speechattn.metrics.verification` for the conventions on scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from speechattn.metrics.verification import to_numpy

__all__ = ["as_norm", "as_norm_from_scores", "cosine_score_matrix"]


def cosine_score_matrix(a: Any, b: Any) -> Any:
    """Cosine similarity of every row of ``a`` with every row of ``b``.

    Args:
        a: embeddings, shape `(n, dim)` (torch tensor or array-like).
        b: embeddings, shape `(m, dim)`.

    Returns:
        shape `(n, m)`: a torch tensor (float32 or wider, on ``a``'s device) if ``a`` is a
        tensor, else a float64 NumPy array. Zero vectors score 0.
    """
    as_torch = isinstance(a, torch.Tensor)
    ta = a if as_torch else torch.from_numpy(np.asarray(a, dtype=np.float64))
    tb = b if isinstance(b, torch.Tensor) else torch.from_numpy(np.asarray(b, dtype=np.float64))
    if ta.dim() != 2 or tb.dim() != 2 or ta.shape[1] != tb.shape[1]:
        raise ValueError(f"a and b must be (n, dim) and (m, dim), got {tuple(ta.shape)} and {tuple(tb.shape)}")
    dtype = torch.promote_types(torch.promote_types(ta.dtype, tb.dtype), torch.float32)
    ta = ta.to(dtype)
    tb = tb.to(device=ta.device, dtype=dtype)
    out = F.normalize(ta, dim=1) @ F.normalize(tb, dim=1).T
    return out if as_torch else out.numpy()


# --------------------------------------------------------------------------- score normalisation


def as_norm_from_scores(
    scores: Any,
    enroll_cohort_scores: Any,
    test_cohort_scores: Any,
    top_k: int = 200,
) -> np.ndarray:
    r"""Adaptive symmetric score normalisation (AS-Norm) from precomputed cohort scores.

    .. math:: \tilde s = \tfrac12\Big(\frac{s - \mu_e}{\sigma_e} + \frac{s - \mu_t}{\sigma_t}\Big)

    where :math:`\mu_e, \sigma_e` are the mean and (population) std of the ``top_k``
    highest cohort scores of the enrollment side, and likewise for the test side.
    ``top_k`` is capped at the cohort size; std is floored at 1e-8.

    Args:
        scores: raw trial scores, shape `(n_pairs,)`.
        enroll_cohort_scores: shape `(n_pairs, n_cohort)`, enrollment side vs. cohort.
        test_cohort_scores: shape `(n_pairs, n_cohort)`, test side vs. cohort.
        top_k (int, optional): cohort scores used per side, >= 2. (Default: ``200``)

    Returns:
        np.ndarray: normalised scores, float64, shape `(n_pairs,)`.
    """
    s = to_numpy(scores).astype(np.float64)
    e = to_numpy(enroll_cohort_scores).astype(np.float64)
    t = to_numpy(test_cohort_scores).astype(np.float64)
    if s.ndim != 1 or e.ndim != 2 or t.ndim != 2 or e.shape[0] != s.size or t.shape[0] != s.size:
        raise ValueError(
            f"expected scores (n,), enroll/test cohort scores (n, n_cohort); got {s.shape}, {e.shape}, {t.shape}"
        )
    k = _check_top_k(top_k, min(e.shape[1], t.shape[1]))
    return 0.5 * (_znorm(s, e, k) + _znorm(s, t, k))


def _check_top_k(top_k: int, n_cohort: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 2:
        raise ValueError(f"top_k must be an int >= 2, got {top_k!r}")
    if n_cohort < 2:
        raise ValueError(f"the cohort needs at least 2 members, got {n_cohort}")
    return int(min(top_k, n_cohort))


def _znorm(s: np.ndarray, cohort: np.ndarray, k: int) -> np.ndarray:
    top = np.partition(cohort, cohort.shape[1] - k, axis=1)[:, cohort.shape[1] - k :]
    return (s - top.mean(axis=1)) / np.maximum(top.std(axis=1), 1e-8)


def as_norm(
    scores: Any,
    enroll_emb: Any,
    test_emb: Any,
    cohort_emb: Any,
    top_k: int = 200,
    chunk_size: int = 4096,
) -> np.ndarray:
    """AS-Norm of cosine trial scores, with cohort scores computed from embeddings.

    Cohort scores are cosine similarities (:func:`cosine_score_matrix`), computed in chunks
    of ``chunk_size`` trials to bound memory; see :func:`as_norm_from_scores` for the
    formula. ``scores`` should be on the same scale as the cohort scores (cosine).

    Args:
        scores: raw trial scores, shape `(n_pairs,)`.
        enroll_emb: enrollment embedding of each trial, shape `(n_pairs, dim)`.
        test_emb: test embedding of each trial, shape `(n_pairs, dim)`.
        cohort_emb: cohort (imposter) embeddings, shape `(n_cohort, dim)`.
        top_k (int, optional): cohort scores used per side, >= 2. (Default: ``200``)
        chunk_size (int, optional): trials per chunk, >= 1. (Default: ``4096``)

    Returns:
        np.ndarray: normalised scores, float64, shape `(n_pairs,)`.
    """
    s = to_numpy(scores).astype(np.float64)
    e, t, c = (to_numpy(x).astype(np.float64) for x in (enroll_emb, test_emb, cohort_emb))
    if s.ndim != 1 or e.shape != (s.size, c.shape[-1]) or t.shape != e.shape or c.ndim != 2:
        raise ValueError(
            f"expected scores (n,), enroll/test (n, dim), cohort (n_cohort, dim); got "
            f"{s.shape}, {e.shape}, {t.shape}, {c.shape}"
        )
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    k = _check_top_k(top_k, c.shape[0])
    out = np.empty_like(s)
    for start in range(0, s.size, chunk_size):
        sl = slice(start, start + chunk_size)
        out[sl] = 0.5 * (
            _znorm(s[sl], cosine_score_matrix(e[sl], c), k) + _znorm(s[sl], cosine_score_matrix(t[sl], c), k)
        )
    return out
