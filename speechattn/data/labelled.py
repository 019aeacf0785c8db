"""Labelled audio: pair recordings with their time-stamped labels (RTTM, TextGrid, frame files).

A data reference (a recipe's ``data.train`` / ``data.dev``, or ``speechattn evaluate --data``) is

* a **folder** of audio files (searched recursively). Each recording's labels are, first match
  wins: a label file next to it with the same stem (``a.flac`` + ``a.rttm`` / ``a.TextGrid`` /
  ``a.frames``), or its entries (file id = the audio's stem, or that stem as an RTTM id, blanks
  as ``_``: :func:`~speechattn.data.labels.rttm_file_id`) in the RTTM files of the folder;
* a **Kaldi data dir** (``wav.scp``) or a **CSV / JSONL manifest**: the audio it lists; labels
  from a ``labels`` column (a label file per row, relative to the manifest) when there is one,
  else as for a folder (sibling files, then RTTM files in the manifest's folder, matched by
  utterance id or audio stem).

``labels`` can name the label source explicitly instead: one RTTM file, or a folder of label
files matched by stem. A recording with no label source is skipped with a warning (it cannot
be told apart from unlabelled audio); give it an empty ``.rttm`` next to it when it contains no
event at all. Relative references are looked up under the data root, then the current folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from speechattn.data.labels import (
    LABEL_SUFFIXES,
    LabelError,
    Segment,
    apply_label_map,
    read_label_file,
    read_rttm,
    rttm_file_id,
)

__all__ = ["AUDIO_SUFFIXES", "LabelledAudio", "LabelledSet", "load_labelled", "resolve_reference"]

log = logging.getLogger(__name__)

#: Audio suffixes picked up in folders (as the CLI's inputs).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".sph")


@dataclass(frozen=True)
class LabelledAudio:
    """One recording and its segments (after the label map)."""

    id: str
    path: Path
    segments: tuple[Segment, ...]
    source: str


@dataclass
class LabelledSet:
    """The labelled recordings of a reference, and those skipped (id -> one-line reason)."""

    items: list[LabelledAudio]
    skipped: dict[str, str]

    @property
    def labels(self) -> list[str]:
        """Sorted label names found in the segments."""
        return sorted({s.label for item in self.items for s in item.segments})


def resolve_reference(reference: str | Path, root: str | Path) -> Path:
    """``reference`` as an existing path: absolute, under the data root, or under the cwd."""
    path = Path(reference).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path(root) / path, path]
    for c in candidates:
        if c.exists():
            return c
    raise FileNotFoundError(f"{candidates[0]}: labelled data not found (data root is {root})")


def _audio_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
         and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
        key=lambda p: p.parts,
    )


def _rttm_union(files: list[Path]) -> tuple[dict[str, list[Segment]], dict[str, Path]]:
    segments: dict[str, list[Segment]] = {}
    where: dict[str, Path] = {}
    for f in files:
        for file_id, segs in read_rttm(f).items():
            if file_id in where and where[file_id] != f:
                raise LabelError(f"{f}: recording {file_id!r} is also labelled in {where[file_id]}")
            segments.setdefault(file_id, []).extend(segs)
            where[file_id] = f
    return segments, where


def _sibling(audio: Path) -> Path | None:
    for suffix in LABEL_SUFFIXES:
        for candidate in (audio.with_suffix(suffix), audio.with_suffix(suffix.replace("textgrid", "TextGrid"))):
            if candidate.is_file():
                return candidate
    return None


def _read_for(path: Path, keys: list[str], tier: str | None, frame_shift: float) -> list[Segment]:
    """Segments of one recording from its own label file (RTTM: its entry, or the only one)."""
    data = read_label_file(path, tier=tier, frame_shift=frame_shift)
    if isinstance(data, list):
        return data
    for key in keys:
        if key in data:
            return data[key]
    if len(data) == 1:
        return next(iter(data.values()))
    if not data:
        return []
    raise LabelError(f"{path}: no entry for {' or '.join(repr(k) for k in keys)} among {len(data)} recordings")


def load_labelled(
    reference: str | Path,
    root: str | Path = ".",
    *,
    labels: str | Path | None = None,
    tier: str | None = None,
    frame_shift: float = 0.01,
    label_map: Mapping[str, str] | None = None,
) -> LabelledSet:
    """Recordings of ``reference`` with their segments (module docstring for the rules).

    Raises:
        LabelError: a malformed label file; FileNotFoundError: a missing reference;
        ValueError: no audio at all.
    """
    from speechattn.data.manifest_io import load_manifest

    path = resolve_reference(reference, root)
    entries: list[tuple[str, Path, Path | None]] = []  # id, audio, explicit label file
    if path.is_dir() and not (path / "wav.scp").is_file():
        base = path
        for audio in _audio_files(path):
            entries.append((audio.stem, audio, None))
        seen: dict[str, Path] = {}
        for utt_id, audio, _ in entries:
            if utt_id in seen:
                raise ValueError(f"{path}: two recordings named {utt_id!r} ({seen[utt_id]} and {audio}); "
                                 "labels are matched by file name")
            seen[utt_id] = audio
    else:
        manifest = load_manifest(path)
        base = path if path.is_dir() else path.parent
        for utt in manifest:
            explicit = utt.extra.get("labels")
            label_path = None
            if explicit:
                label_path = Path(str(explicit))
                if not label_path.is_absolute():
                    label_path = base / label_path
            entries.append((utt.id, Path(utt.path), label_path))
    if not entries:
        raise ValueError(f"{path}: no audio files ({', '.join(AUDIO_SUFFIXES)})")

    explicit_dir: Path | None = None
    if labels is not None:
        source = resolve_reference(labels, root)
        if source.is_dir():
            explicit_dir, union_files = source, []
        else:
            union_files = [source]
    else:
        union_files = sorted(p for p in base.rglob("*.rttm") if not any(x.startswith(".") for x in p.relative_to(base).parts))
    union, where = _rttm_union(union_files)

    items: list[LabelledAudio] = []
    skipped: dict[str, str] = {}
    for utt_id, audio, label_path in entries:
        # last, the RTTM file id `speechattn label` gives the audio ("meeting 2024.wav": meeting_2024)
        keys = [utt_id, audio.stem, rttm_file_id(audio.stem)]
        if label_path is None and explicit_dir is not None:
            label_path = next((p for p in (explicit_dir / f"{audio.stem}{s}" for s in (".rttm", ".TextGrid", ".textgrid", ".frames"))
                               if p.is_file()), None)
        if label_path is None and labels is None:
            label_path = _sibling(audio)
        if label_path is not None:
            if not label_path.is_file():
                raise LabelError(f"{label_path}: label file of {utt_id!r} not found")
            segs, src = _read_for(label_path, keys, tier, frame_shift), str(label_path)
        elif any(k in union for k in keys):
            key = next(k for k in keys if k in union)
            segs, src = union[key], str(where[key])
        else:
            skipped[utt_id] = f"{audio}: no labels (no label file next to it, not in any RTTM)"
            continue
        items.append(LabelledAudio(utt_id, audio, tuple(apply_label_map(segs, label_map)), src))
    for reason in list(skipped.values())[:5]:
        log.warning("skipped %s", reason)
    if len(skipped) > 5:
        log.warning("skipped %d more unlabelled recordings", len(skipped) - 5)
    return LabelledSet(items, skipped)
