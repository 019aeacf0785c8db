"""Frame-level detection metrics of labelled segments (voice activity, frame labels).

Reference and hypothesis are compared on a regular grid (10 ms by default, see
:func:`speechattn.data.labels.segments_to_frames`), so systems with different native frame rates
are scored alike. No forgiveness collar is applied around reference boundaries.

* **precision / recall / F1** of each class's active frames, summed over recordings (micro);
  ``macro_f1`` averages the classes' F1.
* **detection error rate** (as pyannote.metrics): ``(false alarm + missed detection) / total
  reference`` duration, per class and over all classes.
* **accuracy** (single-label data only): frames whose whole label set (including "none") is right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["DetectionCounts", "detection_metrics"]


@dataclass
class DetectionCounts:
    """Running frame counts per class: true positives, false positives, false negatives."""

    classes: Sequence[str]
    tp: np.ndarray = field(init=False)
    fp: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)
    frames: int = 0
    correct: int = 0

    def __post_init__(self) -> None:
        k = len(self.classes)
        self.tp, self.fp, self.fn = np.zeros(k, np.int64), np.zeros(k, np.int64), np.zeros(k, np.int64)

    def update(self, reference: np.ndarray, hypothesis: np.ndarray) -> "DetectionCounts":
        """Add one recording: (N, K) bool reference and hypothesis activity on the same grid
        (a hypothesis of another length is cut or padded with "inactive")."""
        ref = np.asarray(reference, dtype=bool)
        hyp = np.asarray(hypothesis, dtype=bool)
        if ref.ndim != 2 or ref.shape[1] != len(self.classes) or hyp.ndim != 2 or hyp.shape[1] != len(self.classes):
            raise ValueError(f"reference and hypothesis must be (frames, {len(self.classes)}), got "
                             f"{tuple(ref.shape)} and {tuple(hyp.shape)}")
        if hyp.shape[0] != ref.shape[0]:
            fixed = np.zeros_like(ref)
            n = min(ref.shape[0], hyp.shape[0])
            fixed[:n] = hyp[:n]
            hyp = fixed
        self.tp += (ref & hyp).sum(0)
        self.fp += (~ref & hyp).sum(0)
        self.fn += (ref & ~hyp).sum(0)
        self.frames += ref.shape[0]
        self.correct += int((ref == hyp).all(1).sum())
        return self

    def metrics(self) -> dict[str, float]:
        """``precision``, ``recall``, ``f1``, ``detection_error_rate`` (pooled over classes),
        ``macro_f1``, ``accuracy`` and the same per class as ``<name>_f1`` etc. (fractions)."""
        out: dict[str, float] = {}
        f1s = []
        for k, name in enumerate(self.classes):
            m = _scores(int(self.tp[k]), int(self.fp[k]), int(self.fn[k]))
            f1s.append(m["f1"])
            if len(self.classes) > 1:
                out.update({f"{name}_{key}": v for key, v in m.items()})
        out.update(_scores(int(self.tp.sum()), int(self.fp.sum()), int(self.fn.sum())))
        out["macro_f1"] = float(np.mean(f1s)) if f1s else 0.0
        out["accuracy"] = self.correct / self.frames if self.frames else 0.0
        return out


def _scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    der = (fp + fn) / (tp + fn) if tp + fn else (0.0 if fp == 0 else float("inf"))
    return {"precision": precision, "recall": recall, "f1": f1, "detection_error_rate": der}


def detection_metrics(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], classes: Sequence[str]
) -> dict[str, float]:
    """Metrics of (reference, hypothesis) activity pairs, each (N_i, K) bool on one grid."""
    counts = DetectionCounts(classes)
    for ref, hyp in pairs:
        counts.update(ref, hyp)
    return counts.metrics()
