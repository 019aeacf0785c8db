"""Direct reference implementations of the metrics, written apart from :mod:`speechattn.metrics`.

Tests recompute a run's or a command's numbers with these from the model's own outputs
(embeddings, hypotheses), so a wrong metric (or a constant) fails instead of merely landing in a
valid range. They are plain and slow on purpose: no shared helper with the package.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def all_pair_cosine_trials(emb: np.ndarray, speakers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, target) of every unordered pair ``i < j`` of (N, E) embeddings: cosine similarity,
    and whether the two utterances share a speaker."""
    emb = np.asarray(emb, dtype=np.float64)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    i, j = np.triu_indices(len(speakers), k=1)
    scores = np.einsum("ne,ne->n", unit[i], unit[j])
    target = np.array([speakers[a] == speakers[b] for a, b in zip(i.tolist(), j.tolist())])
    return scores, target


def _roc(scores: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-alarm rate, hit rate) after accepting the trials from the highest score down, one
    distinct score at a time, from (0, 0) (accept nothing) to (1, 1) (accept everything)."""
    scores, target = np.asarray(scores, dtype=np.float64), np.asarray(target, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], target[order]
    last_of_group = np.append(s[1:] != s[:-1], True)
    hits, false_alarms = np.cumsum(y)[last_of_group], np.cumsum(~y)[last_of_group]
    return (np.concatenate([[0.0], false_alarms / (~y).sum()]), np.concatenate([[0.0], hits / y.sum()]))


def reference_eer(scores: np.ndarray, target: np.ndarray) -> float:
    """Equal error rate (a fraction): where the straight-segment ROC curve crosses
    ``miss rate == false-alarm rate`` (``1 - x - tpr(x) = 0``), found by bisection."""
    fpr, tpr = _roc(scores, target)
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if 1.0 - mid - np.interp(mid, fpr, tpr) > 0 else (lo, mid)
    return lo


def reference_min_dcf(scores: np.ndarray, target: np.ndarray, p_target: float = 0.01) -> float:
    """Normalised minimum detection cost (c_miss = c_fa = 1) over every operating point."""
    fpr, tpr = _roc(scores, target)
    cost = p_target * (1.0 - tpr) + (1.0 - p_target) * fpr
    return float(cost.min() / min(p_target, 1.0 - p_target))


def edit_distance(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> int:
    """Levenshtein distance (substitutions + deletions + insertions), full table."""
    table = [[0] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    for i in range(len(ref) + 1):
        table[i][0] = i
    for j in range(len(hyp) + 1):
        table[0][j] = j
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1,
                              table[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    return table[len(ref)][len(hyp)]


def frame_counts(reference: Sequence[tuple[float, float]], hypothesis: Sequence[tuple[float, float]],
                 duration: float, step: float = 0.01) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of the frames ``[k*step, (k+1)*step)`` of
    ``duration`` whose centre lies in a reference / hypothesis ``(start, end)`` interval."""
    tp = fp = fn = 0
    for k in range(int(round(duration / step))):
        t = (k + 0.5) * step
        in_ref = any(a <= t < b for a, b in reference)
        in_hyp = any(a <= t < b for a, b in hypothesis)
        tp += in_ref and in_hyp
        fp += in_hyp and not in_ref
        fn += in_ref and not in_hyp
    return tp, fp, fn


def f1_precision_recall(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """(F1, precision, recall) of frame counts (0 where undefined)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return f1, precision, recall
