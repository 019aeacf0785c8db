"""Evaluation metrics.

:mod:`speechattn.metrics.verification`: speaker verification (EER, minDCF, DET curves,
trial lists, AS-Norm) and closed-set identification accuracy.

:mod:`speechattn.metrics.errors`: edit-distance error rates (WER, CER, PER).
"""

from __future__ import annotations

from speechattn.metrics.errors import ErrorRate, edit_ops
from speechattn.metrics.verification import (
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

__all__ = [
    "ErrorRate",
    "Trial",
    "all_pairs_trials",
    "as_norm",
    "as_norm_from_scores",
    "compute_eer",
    "compute_min_dcf",
    "cosine_score_matrix",
    "det_curve",
    "edit_ops",
    "identification_accuracy",
    "plot_det",
    "read_trials",
]
