"""Speaker-verification and identification metrics: EER, minDCF, DET points, top-k accuracy.

Conventions used throughout :mod:`speechattn.metrics`' verification modules:

* ``scores``: one similarity per trial, higher = more likely the same speaker; a trial
  is *accepted* when ``score >= threshold``.
* ``labels``: 1/``True`` for target (same-speaker) trials, 0/``False`` for non-target.
* Inputs may be lists, NumPy arrays or torch tensors (any device); results are Python
  floats or NumPy arrays (:func:`~speechattn.metrics.scoring.cosine_score_matrix` keeps
  torch in, torch out).

Related modules: :mod:`speechattn.metrics.scoring` (cosine scoring, AS-Norm),
:mod:`speechattn.metrics.trials` (trial lists) and :mod:`speechattn.metrics.plots` (DET plot).
The helpers :func:`to_numpy`, :func:`target_nontarget_scores`, :func:`error_rates`,
:func:`eer_from_rates` and :func:`min_dcf_from_rates` are shared with them.

No scikit-learn or SciPy is needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["compute_eer", "compute_min_dcf", "det_curve", "identification_accuracy"]


# --------------------------------------------------------------------------- input checks


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a NumPy array (a torch tensor is detached and moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def target_nontarget_scores(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(target_scores, nontarget_scores)`` as float64 arrays."""
    s = to_numpy(scores)
    y = to_numpy(labels)
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D, got shapes {s.shape} and {y.shape}")
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if not np.issubdtype(s.dtype, np.integer) and not np.issubdtype(s.dtype, np.floating):
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if y.dtype != np.bool_:
        if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be 0/1 or boolean (1 = target trial)")
        y = y.astype(bool)
    tgt, non = s[y], s[~y]
    if tgt.size == 0 or non.size == 0:
        raise ValueError(f"need both target and non-target trials, got {tgt.size} target and {non.size} non-target")
    return tgt, non


# --------------------------------------------------------------------------- DET / EER / DCF


def error_rates(tgt: np.ndarray, non: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`det_curve` of validated target and non-target scores."""
    thresholds = np.append(np.unique(np.concatenate([tgt, non])), np.inf)
    tgt_sorted, non_sorted = np.sort(tgt), np.sort(non)
    # reject when score < threshold: misses are targets below it, false alarms non-targets at/above it
    fnr = np.searchsorted(tgt_sorted, thresholds, side="left") / tgt.size
    fpr = (non.size - np.searchsorted(non_sorted, thresholds, side="left")) / non.size
    return fpr, fnr, thresholds


def det_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every operating point of a score list: false-alarm and miss rates per threshold.

    Args:
        scores: trial scores, shape `(n,)`.
        labels: 1/True for target trials, shape `(n,)`; both classes must be present.

    Returns:
        (fpr, fnr, thresholds), each a float64 array of shape `(k + 1,)` with ``k`` the
        number of distinct scores. ``thresholds`` is ascending: the distinct scores, then
        ``+inf`` (reject everything). ``fpr[i]`` is the fraction of non-target scores
        ``>= thresholds[i]`` (non-increasing, from 1 to 0) and ``fnr[i]`` the fraction of
        target scores ``< thresholds[i]`` (non-decreasing, from 0 to 1).
    """
    tgt, non = target_nontarget_scores(scores, labels)
    return error_rates(tgt, non)


def eer_from_rates(fpr: np.ndarray, fnr: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """:func:`compute_eer` of :func:`det_curve`'s operating points."""
    diff = fnr - fpr  # non-decreasing, -1 at the first point, +1 at the last
    k = int(np.argmax(diff >= 0))
    if diff[k] == 0:
        return float(fnr[k]), float(thresholds[k])
    # the crossing lies on the ROC segment between operating points k-1 and k
    a = -diff[k - 1] / (diff[k] - diff[k - 1])
    eer = fnr[k - 1] + a * (fnr[k] - fnr[k - 1])
    lo, hi = thresholds[k - 1], thresholds[k]
    threshold = lo if math.isinf(hi) or math.isinf(lo) else lo + a * (hi - lo)
    return float(eer), float(threshold)


def compute_eer(scores: Any, labels: Any) -> tuple[float, float]:
    """Equal error rate from the exact ROC, linearly interpolated at the crossing.

    The miss and false-alarm rates are evaluated at every distinct score (see
    :func:`det_curve`); the EER is where the straight ROC segment between the two
    operating points around ``fnr == fpr`` crosses that line (the same value as
    ``brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)`` on ``sklearn.metrics.roc_curve``).

    Args:
        scores: trial scores, shape `(n,)`.
        labels: 1/True for target trials, shape `(n,)`; both classes must be present.

    Returns:
        (eer, threshold): the EER as a fraction in `[0, 1]`, and the threshold interpolated
        the same way between the two thresholds (the finite one if the other is ``inf``).
    """
    return eer_from_rates(*det_curve(scores, labels))


def compute_min_dcf(
    scores: Any,
    labels: Any,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """Normalised minimum detection cost (NIST SRE; Kaldi's ``compute_min_dcf.py``).

    ``DCF(t) = c_miss * p_target * fnr(t) + c_fa * (1 - p_target) * fpr(t)``, minimised over
    every operating point of :func:`det_curve` (including accept-all and reject-all), and
    divided by ``min(c_miss * p_target, c_fa * (1 - p_target))``, the cost of the better
    trivial system. The result is therefore in `[0, 1]`.

    Args:
        scores: trial scores, shape `(n,)`.
        labels: 1/True for target trials, shape `(n,)`; both classes must be present.
        p_target (float, optional): prior of a target trial, in `(0, 1)`. (Default: ``0.01``)
        c_miss (float, optional): cost of a miss, > 0. (Default: ``1.0``)
        c_fa (float, optional): cost of a false alarm, > 0. (Default: ``1.0``)

    Returns:
        (min_dcf, threshold): the normalised minDCF and the lowest threshold reaching it
        (``inf`` when rejecting every trial is optimal).
    """
    if not (0.0 < p_target < 1.0):
        raise ValueError(f"p_target must be in (0, 1), got {p_target!r}")
    if not (c_miss > 0 and c_fa > 0 and math.isfinite(c_miss) and math.isfinite(c_fa)):
        raise ValueError(f"c_miss and c_fa must be positive and finite, got {c_miss!r}, {c_fa!r}")
    fpr, fnr, thresholds = det_curve(scores, labels)
    min_dcf, k = min_dcf_from_rates(fpr, fnr, p_target, c_miss, c_fa)
    return min_dcf, float(thresholds[k])


def min_dcf_from_rates(
    fpr: np.ndarray, fnr: np.ndarray, p_target: float, c_miss: float, c_fa: float
) -> tuple[float, int]:
    """Normalised minDCF of :func:`det_curve`'s operating points, and the index of the first minimum."""
    dcf = c_miss * p_target * fnr + c_fa * (1.0 - p_target) * fpr
    k = int(np.argmin(dcf))  # first minimum = lowest threshold
    c_def = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(dcf[k] / c_def), k


# --------------------------------------------------------------------------- identification


def identification_accuracy(scores_matrix: Any, true_idx: Any, top_k: int = 1) -> float:
    """Closed-set identification accuracy (top-``k``).

    Args:
        scores_matrix: shape `(n_test, n_classes)`, higher = more likely.
        true_idx: correct class of each test item, integer, shape `(n_test,)`.
        top_k (int, optional): count a hit when the true class is among the ``top_k``
            highest scores (ties broken by class index). (Default: ``1``)

    Returns:
        float: fraction of correct test items, in `[0, 1]`.
    """
    m = to_numpy(scores_matrix)
    y = to_numpy(true_idx)
    if m.ndim != 2 or y.ndim != 1 or m.shape[0] != y.size or y.size == 0:
        raise ValueError(f"expected scores_matrix (n, n_classes) and true_idx (n,), n > 0; got {m.shape}, {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any() or (y >= m.shape[1]).any():
        raise ValueError(f"true_idx must be integers in [0, {m.shape[1]})")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= m.shape[1]:
        raise ValueError(f"top_k must be an int in [1, {m.shape[1]}], got {top_k!r}")
    if np.isnan(m).any():
        raise ValueError("scores_matrix contains NaN")
    true_score = m[np.arange(y.size), y]
    # rank = classes that beat the true one (higher score, or equal score with lower index)
    cols = np.arange(m.shape[1])
    beats = (m > true_score[:, None]) | ((m == true_score[:, None]) & (cols[None, :] < y[:, None]))
    return float((beats.sum(axis=1) < top_k).mean())
