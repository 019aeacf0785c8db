"""Plots of speaker-verification results: the DET curve (:func:`plot_det`)."""

from __future__ import annotations

import os
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from speechattn.metrics.verification import eer_from_rates, error_rates, min_dcf_from_rates, target_nontarget_scores
from speechattn.utils.extras import require

__all__ = ["plot_det"]

_DET_TICKS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)


def plot_det(scores: Any, labels: Any, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write a DET plot (miss vs. false-alarm rate on normal-deviate axes) as a PNG.

    Needs matplotlib (``pip install 'speechattn[train]'``; else
    :class:`~speechattn.utils.extras.MissingExtraError`). Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch); the EER
    and minDCF (``p_target=0.01``) operating points are marked. Parent folders are created; the
    file is written atomically (an error mid-write leaves no half-written PNG).

    Args:
        scores: trial scores, shape `(n,)`.
        labels: 1/True for target trials, shape `(n,)`.
        path (str or PathLike): output file (PNG).
        title (str or None, optional): figure title. (Default: ``None``)

    Returns:
        Path: ``path``.
    """
    require("matplotlib", "plot_det")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tgt, non = target_nontarget_scores(scores, labels)
    fpr, fnr, thresholds = error_rates(tgt, non)
    eer, _ = eer_from_rates(fpr, fnr, thresholds)
    min_dcf, k_dcf = min_dcf_from_rates(fpr, fnr, 0.01, 1.0, 1.0)

    lo = max(_DET_TICKS[0], 0.5 / max(tgt.size, non.size))
    hi = 0.5 if eer <= 0.3 else 0.99
    ppf = np.vectorize(NormalDist().inv_cdf, otypes=[float])

    def dev(p: np.ndarray | float) -> np.ndarray:
        return ppf(np.clip(p, lo / 2, 1 - lo / 2))

    fig = Figure(figsize=(5.5, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(dev(fpr), dev(fnr), lw=1.5, label="DET")
    ax.plot(dev(eer), dev(eer), "o", label=f"EER {100 * eer:.2f}%")
    ax.plot(dev(fpr[k_dcf]), dev(fnr[k_dcf]), "s", label=f"minDCF(0.01) {min_dcf:.3f}")
    ticks = [t for t in _DET_TICKS if lo <= t <= hi]
    ax.set_xticks(dev(np.array(ticks)))
    ax.set_yticks(dev(np.array(ticks)))
    labels_pct = [f"{100 * t:g}" for t in ticks]
    ax.set_xticklabels(labels_pct)
    ax.set_yticklabels(labels_pct)
    ax.set_xlim(dev(lo), dev(hi))
    ax.set_ylim(dev(lo), dev(hi))
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="upper right")
    if title is not None:
        ax.set_title(title)
    fig.tight_layout()
    from speechattn.utils.files import atomic_write

    out = Path(path)
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))  # atomically
    return out
