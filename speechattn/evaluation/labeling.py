"""Frame-labeling metrics of a trained run on labelled recordings (``speechattn evaluate`` of a frame-labeling run)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from speechattn.audio import AudioError
from speechattn.data.labelled import load_labelled
from speechattn.data.labels import LabelError, segments_to_frames
from speechattn.inference import Labeler
from speechattn.metrics.detection import DetectionCounts
from speechattn.utils.paths import data_root as resolve_data_root

__all__ = ["evaluate_run"]

log = logging.getLogger(__name__)


def evaluate_run(
    run_dir: str | Path,
    data: str,
    *,
    labels: str | None = None,
    data_root: str | None = None,
    progress: bool | None = None,
    device: str | torch.device = "auto",
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Metrics of a trained frame-labeling run on labelled recordings (``speechattn evaluate``).

    Every recording is labelled with the streaming path of :class:`speechattn.inference.Labeler`
    (as ``speechattn label`` does), on ``device`` (see :meth:`Labeler.from_run`), and scored on
    the recipe's evaluation grid. ``on_skip(file, reason)`` is called for each recording whose
    audio or labels could not be used (instead of a warning); the metrics leave it out.
    """
    labeler = Labeler.from_run(run_dir, device=device)
    recipe = labeler.recipe
    root = resolve_data_root(data_root if data_root is not None else recipe.data.root)
    d = recipe.data
    dataset = load_labelled(data, root, labels=labels, tier=d.tier, frame_shift=d.frame_shift, label_map=d.label_map)
    if not dataset.items:
        raise ValueError(f"{data}: no labelled recordings")
    unknown = sorted(set(dataset.labels) - set(labeler.classes))
    if unknown:
        log.warning("%s: labels %s are not classes of the model %s; ignored", data, unknown, labeler.classes)
    counts = DetectionCounts(labeler.classes)
    skipped = dict(dataset.skipped)
    hours = 0.0
    step = recipe.eval.step
    for item in tqdm(dataset.items, desc="labelling", disable=None if progress is None else not progress, leave=False):
        try:
            result = labeler.label_file(item.path)
        except (AudioError, LabelError) as err:
            skipped[item.id] = str(err)
            if on_skip is None:
                log.warning("skipped %s", err)
            else:
                on_skip(str(item.path), str(err))
            continue
        hours += result.duration / 3600
        counts.update(segments_to_frames(item.segments, labeler.classes, step, result.duration),
                      segments_to_frames(result.segments, labeler.classes, step, result.duration))
    return {"data": str(data), "files": len(dataset.items) - (len(skipped) - len(dataset.skipped)),
            "skipped_files": len(skipped), "hours": round(hours, 4), "classes": labeler.classes, **counts.metrics()}
