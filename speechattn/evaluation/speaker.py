"""Speaker metrics of a trained run on any labelled data (``speechattn evaluate`` of a speaker run)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch

from speechattn.data.featcache import extract_features
from speechattn.data.splits import resolve_manifest
from speechattn.inference import SpeakerRecognizer
from speechattn.metrics import plot_det
from speechattn.metrics.embeddings import evaluate_embeddings, speaker_means, trial_path
from speechattn.utils.paths import data_root as resolve_data_root

__all__ = ["evaluate_run"]

log = logging.getLogger(__name__)


def evaluate_run(
    run_dir: str | Path,
    data: str,
    *,
    trials: str | Path | None = None,
    cohort: str | None = None,
    det_path: str | Path | None = None,
    data_root: str | None = None,
    device: str | torch.device = "auto",
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Metrics of a trained run on any labelled data (``speechattn evaluate``), computed on ``device``.

    ``on_skip(file, reason)`` is called for each audio file that could not be used (instead of a
    warning); the metrics leave it out.
    """
    model = SpeakerRecognizer.from_run(run_dir, device=device)
    root = resolve_data_root(data_root if data_root is not None else model.recipe.data.root)
    manifest = resolve_manifest(data, root)
    fs = extract_features(manifest, model.extractor, desc="features")
    paths = {u.id: str(u.path) for u in manifest}
    for utt_id, reason in fs.failures.items():
        if on_skip is None:
            log.warning("skipped %s: %s", utt_id, reason)
        else:
            on_skip(paths.get(utt_id, utt_id), reason)
    speakers = [str(u.speaker) for u in fs.manifest]
    if any(u.speaker is None for u in fs.manifest):
        raise ValueError(f"{data}: evaluation needs speaker labels for every utterance")
    emb = model.embed_features(fs.feats)
    cohort_emb = None
    if cohort is not None:
        cm = resolve_manifest(cohort, root)
        cfs = extract_features(cm, model.extractor, desc="cohort features")
        names = sorted({str(u.speaker) for u in cfs.manifest})
        idx = {s: i for i, s in enumerate(names)}
        labels = torch.tensor([idx[str(u.speaker)] for u in cfs.manifest])
        cohort_emb = speaker_means(model.embed_features(cfs.feats), labels, len(names))
    trial_file = None if trials is None else trial_path(trials, root)
    metrics, scores, labels = evaluate_embeddings(emb, speakers, [u.id for u in fs.manifest], trials=trial_file,
                                                  cohort=cohort_emb)
    if det_path is not None:
        plot_det(scores, labels, det_path, title=f"{data} DET (EER {metrics['eer']:.2f}%)")
    return {"data": data, "utterances": len(fs.manifest), "speakers": len(set(speakers)), "trials": int(len(labels)),
            "target_trials": int(labels.sum()), "skipped_files": len(fs.failures), **metrics}
