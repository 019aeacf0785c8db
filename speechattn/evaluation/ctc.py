"""Error rates of a trained CTC run on transcribed data (``speechattn evaluate`` of a CTC run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from speechattn.data.featcache import extract_features
from speechattn.data.splits import resolve_manifest
from speechattn.inference import Transcriber
from speechattn.metrics.errors import score_transcripts
from speechattn.tasks.ctc import encoding_tokenizer, manifest_texts
from speechattn.text import encode_corpus
from speechattn.utils.paths import data_root as resolve_data_root

__all__ = ["evaluate_run"]


def evaluate_run(
    run_dir: str | Path,
    data: str,
    *,
    data_root: str | None = None,
    beam: int | None = None,
    progress: bool | None = None,
    device: str | torch.device = "auto",
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Error rates of a trained CTC run on transcribed data (``speechattn evaluate``); the model
    runs on ``device`` (see :meth:`Transcriber.from_run`). ``on_skip(file, reason)`` is called for
    each audio file that could not be used (left out of the scores)."""
    model = Transcriber.from_run(run_dir, device=device)
    recipe = model.recipe
    root = resolve_data_root(data_root if data_root is not None else recipe.data.root)
    manifest = resolve_manifest(data, root)
    encoded = encode_corpus(encoding_tokenizer(model.tokenizer, recipe.data, root), manifest_texts(manifest, str(data)))
    manifest = manifest.filter(lambda u: u.id in encoded.ids)
    fs = extract_features(manifest, model.extractor, desc="features", progress=progress)
    if on_skip is not None:
        paths = {u.id: str(u.path) for u in manifest}
        for utt_id, reason in fs.failures.items():
            on_skip(paths.get(utt_id, utt_id), reason)
    with model.precision():
        hyps = model.decode_features(fs.feats, beam=beam)
    refs = [encoded.ids[u.id] for u in fs.manifest]
    metrics = score_transcripts(model.tokenizer, refs, [h.tokens for h in hyps])
    return {"data": str(data), "utterances": len(refs), "skipped_utterances": len(encoded.skipped) + len(fs.failures),
            **metrics}
