"""Verification and identification metrics of utterance embeddings (speaker recognition)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from speechattn.metrics import (
    all_pairs_trials,
    as_norm,
    compute_eer,
    compute_min_dcf,
    cosine_score_matrix,
    read_trials,
)

__all__ = ["verification_metrics", "evaluate_embeddings", "speaker_means", "trial_path"]

log = logging.getLogger(__name__)


def verification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``eer`` (%), ``min_dcf`` (p_target 0.01) and the EER ``threshold`` of trial scores and target labels."""
    eer, threshold = compute_eer(scores, labels)
    min_dcf, _ = compute_min_dcf(scores, labels, p_target=0.01)
    return {"eer": 100.0 * eer, "min_dcf": float(min_dcf), "threshold": float(threshold)}


def trial_path(reference: str | Path, root: Path) -> Path:
    """A trial list's path: absolute or existing as given, else under the data root."""
    path = Path(reference)
    return path if path.is_absolute() or path.exists() else root / path


def _trial_indices(path: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = {u: i for i, u in enumerate(ids)}
    rows = [(index.get(t.enroll), index.get(t.test), t.target) for t in read_trials(path)]
    kept = [r for r in rows if r[0] is not None and r[1] is not None]
    if len(kept) < len(rows):
        log.warning("%s: %d trials name utterances not in the data; skipped", path, len(rows) - len(kept))
    if not kept:
        raise ValueError(f"{path}: no trial names two utterances of the evaluated data")
    arr = np.array(kept, dtype=np.int64)
    return arr[:, 0], arr[:, 1], arr[:, 2].astype(bool)


def evaluate_embeddings(
    emb: Tensor,
    speakers: list[str],
    ids: list[str],
    *,
    trials: Path | None = None,
    max_nontarget: int | None = None,
    cohort: Tensor | None = None,
    cohort_top_k: int = 100,
    known: tuple[Tensor, list[str]] | None = None,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Verification and identification metrics of utterance embeddings.

    Args:
        emb: (N, E) embeddings; ``speakers`` and ``ids`` label them.
        trials: trial list (ids); default all pairs (non-targets capped by ``max_nontarget``).
        cohort: (C, E) AS-Norm cohort (adds ``eer_asnorm``, ``min_dcf_asnorm``).
        known: (centroids (S, E), names) of enrolled speakers for closed-set identification;
            default: open-set, even-numbered utterances of each speaker enrol, odd ones test.

    Returns:
        (metrics, scores, labels): ``eer`` (%), ``min_dcf`` (p_target 0.01), ``threshold`` (EER
        point), ``accuracy`` (%), and the raw trial scores and target labels.
    """
    if trials is not None:
        enroll, test, labels = _trial_indices(trials, ids)
    else:
        enroll, test, labels = all_pairs_trials(speakers, max_nontarget=max_nontarget, seed=0)
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        raise ValueError("verification needs both target and non-target trials (at least two speakers with two utterances)")
    emb = torch.nn.functional.normalize(emb.float(), dim=-1)
    e, t = emb[torch.as_tensor(enroll)], emb[torch.as_tensor(test)]
    scores = (e * t).sum(-1).numpy()
    metrics = verification_metrics(scores, labels)
    if cohort is not None:
        normed = as_norm(scores, e, t, cohort, top_k=min(cohort_top_k, cohort.shape[0]))
        m = verification_metrics(np.asarray(normed), labels)
        metrics.update({"eer_asnorm": m["eer"], "min_dcf_asnorm": m["min_dcf"]})
    if known is not None:
        centroids, names = known
        index = {s: i for i, s in enumerate(names)}
        truth = torch.tensor([index[s] for s in speakers])
        probe = emb
    else:
        centroids, truth, probe = _enrolment_split(emb, speakers)
    pred = cosine_score_matrix(probe, centroids).argmax(-1)
    metrics["accuracy"] = 100.0 * float((pred == truth).float().mean())
    return metrics, scores, labels


def speaker_means(emb: Tensor, labels: Tensor, count: int) -> Tensor:
    """(count, E) unit-length mean directions of the (N, E) embeddings of each speaker index in ``labels``."""
    emb = torch.nn.functional.normalize(emb, dim=-1)
    sums = torch.zeros(count, emb.shape[1]).index_add_(0, labels, emb)
    return torch.nn.functional.normalize(sums, dim=-1)


def _enrolment_split(emb: Tensor, speakers: list[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Open-set identification: even-numbered utterances of each speaker enrol, odd ones test."""
    names = sorted({s for s in speakers})  # type: ignore[type-var]
    index = {s: i for i, s in enumerate(names)}
    seen: dict[str, int] = {}
    enrol, test = [], []
    for i, s in enumerate(speakers):
        (enrol if seen.get(s, 0) % 2 == 0 else test).append(i)
        seen[s] = seen.get(s, 0) + 1
    labels = torch.tensor([index[s] for s in speakers])
    centroids = speaker_means(emb[enrol], labels[enrol], len(names))
    return centroids, labels[test], emb[test]
