"""Shared by the frame-labeling tests: small real labelled data sets and a tiny trained run.

The data is built from real speechocean762 recordings: reference speech segments come from the
energy endpointer on each clean file; the training folder holds TextGrid labels next to the
audio, the dev folder one RTTM for all files (both label paths of the generic reader).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from speechattn.audio import load_audio
from speechattn.data.labels import Segment, write_rttm, write_textgrid
from speechattn.data.vad_sim import endpoint

#: A seconds-long model: 1 layer of width 32 on 40 mel bins, 40 ms frames.
TINY_RECIPE = """task: labeling
data:
  train: {train}
  dev: {dev}
  crop_seconds: 2.0
features:
  num_mel_bins: 40
model:
  mode: {mode}
  encoder:
    d_model: 32
    num_heads: 2
    num_layers: 1
    ffn_dim: 64
    left_context: 8
    right_context: 2
    subsampling: 4
    subsampling_channels: 8
augment:
  time_masks: 1
  freq_masks: 1
train:
  batch_size: 4
  max_epochs: 2
  lr: 0.005
  warmup_steps: 2
  eval_every: 1
  threads: 2
postprocess:
  onset: 0.5
  offset: 0.4
  min_duration_on: 0.1
  min_duration_off: 0.1
"""

_CACHE: dict[str, Any] = {}


def speech_segments(path: Path) -> list[Segment]:
    wave, rate = load_audio(path, 16000)
    return [Segment(round(a, 3), round(b, 3), "speech") for a, b in endpoint(wave.numpy(), rate)]


def labelled_folders(base: Path, speechocean_dir: Path) -> dict[str, Path]:
    """``train/`` (12 files + TextGrids) and ``dev/`` (4 files + dev.rttm) of real recordings."""
    if "folders" in _CACHE:
        return _CACHE["folders"]
    audio = sorted((speechocean_dir / "audio").glob("*/*.ogg"))
    picks = audio[::max(1, len(audio) // 16)][:16]
    train, dev = base / "train", base / "dev"
    train.mkdir(parents=True)
    dev.mkdir(parents=True)
    rttm_lines = []
    for i, src in enumerate(picks):
        folder = train if i < 12 else dev
        os.symlink(src, folder / src.name)
        segs = speech_segments(src)
        if folder is train:
            write_textgrid(folder / f"{src.stem}.TextGrid", {"speech": segs}, duration=segs[-1].end)
        else:
            import io

            buf = io.StringIO()
            write_rttm(src.stem, segs, buf)
            rttm_lines.append(buf.getvalue())
    (dev / "dev.rttm").write_text("".join(rttm_lines))
    _CACHE["folders"] = {"train": train, "dev": dev}
    return _CACHE["folders"]


def tiny_label_run(tmp_path_factory, speechocean_dir: Path) -> tuple[Path, dict[str, Any], dict[str, Path]]:
    """(run_dir, summary, folders): a single-label speech model trained for two short epochs."""
    if "run" in _CACHE:
        return _CACHE["run"]
    from speechattn.tasks import train_recipe

    base = tmp_path_factory.mktemp("labelled")
    folders = labelled_folders(base, speechocean_dir)
    recipe = base / "tiny.yaml"
    recipe.write_text(TINY_RECIPE.format(train=folders["train"], dev=folders["dev"], mode="single"))
    run_dir = base / "run"
    summary = train_recipe(recipe, run_dir=run_dir, progress=False)
    _CACHE["run"] = (run_dir, summary, folders)
    return _CACHE["run"]
