"""Speaker-verification and identification metrics: EER, minDCF, DET curves, trials, AS-Norm.

Conventions used throughout:

* ``scores``: one similarity per trial, higher = more likely the same speaker; a trial
  is *accepted* when ``score >= threshold``.
* ``labels``: 1/``True`` for target (same-speaker) trials, 0/``False`` for non-target.
* Inputs may be lists, NumPy arrays or torch tensors (any device); results are Python
  floats or NumPy arrays (:func:`cosine_score_matrix` keeps torch in, torch out).

No scikit-learn or SciPy is needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Trial",
    "all_pairs_trials",
    "as_norm",
    "as_norm_from_scores",
    "compute_eer",
    "compute_min_dcf",
    "cosine_score_matrix",
    "det_curve",
    "identification_accuracy",
    "plot_det",
    "read_trials",
]


# --------------------------------------------------------------------------- input checks


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(target_scores, nontarget_scores)`` as float64 arrays."""
    s = _to_numpy(scores)
    y = _to_numpy(labels)
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


def _error_rates(tgt: np.ndarray, non: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    tgt, non = _scores_labels(scores, labels)
    return _error_rates(tgt, non)


def _eer_from_rates(fpr: np.ndarray, fnr: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
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
    return _eer_from_rates(*det_curve(scores, labels))


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
    min_dcf, k = _min_dcf_from_rates(fpr, fnr, p_target, c_miss, c_fa)
    return min_dcf, float(thresholds[k])


def _min_dcf_from_rates(
    fpr: np.ndarray, fnr: np.ndarray, p_target: float, c_miss: float, c_fa: float
) -> tuple[float, int]:
    dcf = c_miss * p_target * fnr + c_fa * (1.0 - p_target) * fpr
    k = int(np.argmin(dcf))  # first minimum = lowest threshold
    c_def = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(dcf[k] / c_def), k


_DET_TICKS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)


def plot_det(scores: Any, labels: Any, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write a DET plot (miss vs. false-alarm rate on normal-deviate axes) as a PNG.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch); the EER
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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tgt, non = _scores_labels(scores, labels)
    fpr, fnr, thresholds = _error_rates(tgt, non)
    eer, _ = _eer_from_rates(fpr, fnr, thresholds)
    min_dcf, k_dcf = _min_dcf_from_rates(fpr, fnr, 0.01, 1.0, 1.0)

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


# --------------------------------------------------------------------------- scoring and trials


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


# up to this many pairs, all_pairs_trials enumerates instead of sampling
_ENUMERATE_PAIRS = 2_000_000


def all_pairs_trials(
    speaker_labels: Sequence[Hashable] | np.ndarray | torch.Tensor,
    max_nontarget: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trials from every unordered pair ``i < j`` of a set of utterances.

    Args:
        speaker_labels: speaker of each utterance, length `n` (strings, ints, ...).
        max_nontarget (int or None, optional): cap on the number of **non-target** pairs.
            ``None`` (or a cap at least the number of non-target pairs) keeps every pair;
            otherwise a uniform random subset of ``max_nontarget`` non-target pairs is drawn
            (without replacement, without enumerating all ``n(n-1)/2`` pairs) with
            ``numpy.random.default_rng(seed)``. **All target pairs are always kept.**
            (Default: ``None``)
        seed (int, optional): seed of the non-target subsample; same inputs and seed give
            the same trials. (Default: ``0``)

    Returns:
        (i, j, target): int64, int64 and bool arrays of shape `(n_trials,)`, sorted by
        ``(i, j)``, with ``i < j`` and ``target[k] = speaker_labels[i[k]] == speaker_labels[j[k]]``.
    """
    spk = _to_numpy(speaker_labels) if isinstance(speaker_labels, torch.Tensor) else speaker_labels
    if isinstance(spk, np.ndarray) and spk.ndim != 1:
        raise ValueError(f"speaker_labels must be 1-D, got shape {spk.shape}")
    if max_nontarget is not None and (
        isinstance(max_nontarget, bool) or not isinstance(max_nontarget, (int, np.integer)) or max_nontarget < 0
    ):
        raise ValueError(f"max_nontarget must be a non-negative int or None, got {max_nontarget!r}")
    ids: dict[Hashable, int] = {}
    codes = np.fromiter(
        (ids.setdefault(s.item() if isinstance(s, np.generic) else s, len(ids)) for s in spk), dtype=np.int64
    )
    n = codes.size
    total = n * (n - 1) // 2

    # target pairs, speaker by speaker
    ti, tj = [], []
    for c in np.unique(codes):
        members = np.flatnonzero(codes == c)
        if members.size > 1:
            a, b = np.triu_indices(members.size, k=1)
            ti.append(members[a])
            tj.append(members[b])
    ti_arr = np.concatenate(ti) if ti else np.empty(0, np.int64)
    tj_arr = np.concatenate(tj) if tj else np.empty(0, np.int64)
    n_nontarget = total - ti_arr.size

    if max_nontarget is None or max_nontarget >= n_nontarget:
        i, j = np.triu_indices(n, k=1)
        i, j = i.astype(np.int64), j.astype(np.int64)
        return i, j, codes[i] == codes[j]

    rng = np.random.default_rng(seed)
    if total <= _ENUMERATE_PAIRS or 2 * max_nontarget > n_nontarget:
        # small problem or dense subsample: enumerate the non-target pairs and pick a subset
        i, j = np.triu_indices(n, k=1)
        keep = codes[i] != codes[j]
        keys = i[keep].astype(np.int64) * n + j[keep]
    else:
        # rejection sampling of distinct non-target pairs: ordered pairs (a != b) drawn
        # uniformly are uniform over unordered pairs; keep the distinct non-target ones
        keys = np.empty(0, np.int64)
        while keys.size < max_nontarget:
            draw = max(2 * (max_nontarget - keys.size), 1024)
            a = rng.integers(0, n, size=draw)
            b = rng.integers(0, n - 1, size=draw)
            b = b + (b >= a)
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            nontarget = codes[lo] != codes[hi]
            keys = np.unique(np.concatenate([keys, lo[nontarget] * n + hi[nontarget]]))
    keys = np.sort(rng.choice(keys, size=max_nontarget, replace=False))
    ni, nj = keys // n, keys % n

    i = np.concatenate([ti_arr, ni])
    j = np.concatenate([tj_arr, nj])
    target = np.concatenate([np.ones(ti_arr.size, bool), np.zeros(ni.size, bool)])
    order = np.lexsort((j, i))
    return i[order], j[order], target[order]


class Trial(NamedTuple):
    """One line of a trial list."""

    enroll: str
    test: str
    target: bool


_TRIAL_LABELS = {"target": True, "1": True, "nontarget": False, "0": False}


def read_trials(path: str | os.PathLike[str]) -> list[Trial]:
    """Read a trial list: one ``enroll_id test_id label`` per line.

    ``label`` is ``target``/``nontarget`` or ``1``/``0`` (case-insensitive). Fields are
    separated by whitespace; blank lines and lines starting with ``#`` are skipped.

    Args:
        path (str or PathLike): the trial file.

    Returns:
        list[Trial]: ``(enroll, test, target)`` in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed line (the message gives ``file:line``), or no trials at all.
    """
    trials: list[Trial] = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) != 3:
                raise ValueError(
                    f"{path}:{lineno}: expected 3 fields 'enroll_id test_id target|nontarget|1|0', "
                    f"got {len(fields)}: {line!r}"
                )
            label = fields[2].lower()
            if label not in _TRIAL_LABELS:
                hint = ""
                if fields[0].lower() in _TRIAL_LABELS:
                    hint = " (this looks like the VoxCeleb 'label enroll test' order; put the label last)"
                raise ValueError(
                    f"{path}:{lineno}: label must be target, nontarget, 1 or 0, got {fields[2]!r}{hint}"
                )
            trials.append(Trial(fields[0], fields[1], _TRIAL_LABELS[label]))
    if not trials:
        raise ValueError(f"{path}: no trials found")
    return trials


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
    s = _to_numpy(scores).astype(np.float64)
    e = _to_numpy(enroll_cohort_scores).astype(np.float64)
    t = _to_numpy(test_cohort_scores).astype(np.float64)
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
    s = _to_numpy(scores).astype(np.float64)
    e, t, c = (_to_numpy(x).astype(np.float64) for x in (enroll_emb, test_emb, cohort_emb))
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
    m = _to_numpy(scores_matrix)
    y = _to_numpy(true_idx)
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
