"""Time-stamped labels: RTTM, TextGrid interval tiers and per-frame label files, and frame targets.

Every label source is read into a list of :class:`Segment` (``start``, ``end`` in seconds and a
class name); models see them only through :func:`frame_targets`, which samples the segments at
the centres of the model's output frames (a :class:`FrameGrid`). Evaluation samples reference and
hypothesis segments on a fixed grid with :func:`segments_to_frames`, so any two labelings (ours,
another VAD's, a reference RTTM) are compared the same way whatever their native frame rate.

Formats:

* **RTTM** (NIST): ``SPEAKER <file-id> <channel> <start> <duration> <NA> <NA> <name> <NA> <NA>``;
  one file may hold many recordings (keyed by ``file-id``, matched to the audio's file stem).
  A file id holds no blank: :func:`rttm_file_id` turns a recording's name into one (each blank
  or other whitespace character becomes ``_``, an empty name ``unnamed``).
  Lines of other types (``SPKR-INFO``...) and comments (``;;``, ``#``) are skipped.
* **TextGrid** (Praat, long or short text format), read with the maintained ``praatio`` parser:
  the intervals of one interval tier with a non-blank text are the segments.
* **Frame labels** (``.frames``): one line per frame, the frame's class, several classes
  separated by commas (overlap), or ``-`` for none. An optional first line
  ``# frame_shift <seconds>`` sets the frame rate (otherwise the caller's ``frame_shift``);
  frame ``i`` covers ``[i * shift, (i + 1) * shift)``.

Malformed RTTM and frame-label files raise :class:`LabelError` with ``file:line: problem``;
TextGrid errors name the file (praatio does not report line numbers).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import Tensor

from speechattn.utils.messages import one_line

__all__ = [
    "LABEL_SUFFIXES",
    "FrameGrid",
    "LabelError",
    "Segment",
    "apply_label_map",
    "frame_targets",
    "merge_segments",
    "read_frame_labels",
    "read_label_file",
    "read_rttm",
    "read_textgrid",
    "rttm_file_id",
    "segments_to_frames",
    "write_frame_labels",
    "write_rttm",
    "write_textgrid",
]

PathLike = str | os.PathLike[str]

#: Label-file suffixes (lower case) and their format.
LABEL_SUFFIXES = {".rttm": "rttm", ".textgrid": "textgrid", ".frames": "frames"}
#: Label meaning "no class" in frame-label files.
NO_LABEL = "-"


class LabelError(ValueError):
    """A label file is malformed or inconsistent (``file:line: problem`` or ``file: problem``)."""


def _err(file: PathLike, line: int | None, problem: str) -> LabelError:
    return LabelError(f"{file}:{line}: {problem}" if line is not None else f"{file}: {problem}")


@dataclass(frozen=True, order=True)
class Segment:
    """A labelled time interval ``[start, end)`` in seconds."""

    start: float
    end: float
    label: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"segment times must be finite, got {self.start}, {self.end}")
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"segment must satisfy 0 <= start <= end, got [{self.start}, {self.end}]")
        if not self.label or any(c.isspace() for c in self.label):
            raise ValueError(f"segment label must be a non-empty word without blanks, got {self.label!r}")

    @property
    def duration(self) -> float:
        return self.end - self.start


# --------------------------------------------------------------------------- segment helpers

def merge_segments(segments: Iterable[Segment], gap: float = 0.0) -> list[Segment]:
    """Sorted segments with overlapping (or closer than ``gap`` s) same-label segments merged."""
    by_label: dict[str, list[Segment]] = {}
    for s in segments:
        by_label.setdefault(s.label, []).append(s)
    out: list[Segment] = []
    for label, items in by_label.items():
        items.sort()
        cur_start, cur_end = items[0].start, items[0].end
        for s in items[1:]:
            if s.start <= cur_end + gap:
                cur_end = max(cur_end, s.end)
            else:
                out.append(Segment(cur_start, cur_end, label))
                cur_start, cur_end = s.start, s.end
        out.append(Segment(cur_start, cur_end, label))
    return sorted(out)


def apply_label_map(segments: Iterable[Segment], label_map: Mapping[str, str] | None) -> list[Segment]:
    """Rename labels with ``label_map`` (``"*"`` catches every other label; a target of ``"-"``
    drops the segment), then merge what became overlapping segments of one label."""
    if not label_map:
        return merge_segments(segments)
    out = []
    for s in segments:
        name = label_map.get(s.label, label_map.get("*", s.label))
        if name != NO_LABEL:
            out.append(Segment(s.start, s.end, name))
    return merge_segments(out)


# --------------------------------------------------------------------------- RTTM

def read_rttm(path: PathLike) -> dict[str, list[Segment]]:
    """Read an RTTM file into ``{file_id: sorted segments}`` (``SPEAKER`` lines only).

    Raises:
        LabelError: a malformed line (``file:line: problem``), or an unreadable file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _err(p, None, "not UTF-8 text") from None
    except OSError as exc:
        raise _err(p, None, f"cannot read ({exc.strerror or exc})") from None
    out: dict[str, list[Segment]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(";;") or line.startswith("#"):
            continue
        fields = line.split()
        if fields[0] != "SPEAKER":
            if fields[0].isupper() and fields[0].replace("-", "").isalpha():
                continue  # other RTTM record types (SPKR-INFO, LEXEME...) carry no segments
            raise _err(p, lineno, f"expected an RTTM line 'SPEAKER <file> <chnl> <start> <dur> ... <name> ...', got {line!r}")
        if len(fields) < 8:
            raise _err(p, lineno, f"RTTM SPEAKER lines need at least 8 fields, got {len(fields)}")
        try:
            start, dur = float(fields[3]), float(fields[4])
        except ValueError:
            raise _err(p, lineno, f"start and duration must be numbers, got {fields[3]!r} and {fields[4]!r}") from None
        if not (math.isfinite(start) and math.isfinite(dur)) or start < 0 or dur < 0:
            raise _err(p, lineno, f"start and duration must be finite and >= 0, got {fields[3]} and {fields[4]}")
        if dur == 0:
            continue
        # rounded to the microsecond: start + duration in floats gives 2.5020000000000002 for 2.502
        out.setdefault(fields[1], []).append(Segment(start, round(start + dur, 6), fields[7]))
    return {k: sorted(v) for k, v in out.items()}


#: The RTTM file id of a recording whose name is empty (:func:`rttm_file_id`).
RTTM_EMPTY_ID = "unnamed"


def rttm_file_id(name: str) -> str:
    """A valid RTTM file id for a recording named ``name`` (an audio file's stem, say).

    RTTM fields are separated by blanks, so each blank or other whitespace character (tab,
    newline, no-break space...) becomes ``_``, and an empty name becomes ``unnamed``
    (:data:`RTTM_EMPTY_ID`); any other name is kept as it is: ``"meeting 2024"`` ->
    ``"meeting_2024"``. Two names may map to the same id (``"a b"`` and ``"a_b"``).
    """
    return "".join("_" if c.isspace() else c for c in name) or RTTM_EMPTY_ID


def write_rttm(file_id: str, segments: Iterable[Segment], out: PathLike | IO[str]) -> None:
    """Write ``segments`` of recording ``file_id`` as RTTM ``SPEAKER`` lines (to a path or stream).

    Raises:
        ValueError: ``file_id`` is empty or holds whitespace (:func:`rttm_file_id` makes a valid one).
    """
    if not file_id or any(c.isspace() for c in file_id):
        raise ValueError(f"RTTM file ids cannot be empty or contain blanks, got {file_id!r}")
    lines = "".join(
        f"SPEAKER {file_id} 1 {s.start:.3f} {s.duration:.3f} <NA> <NA> {s.label} <NA> <NA>\n" for s in segments
    )
    if isinstance(out, (str, os.PathLike)):
        Path(out).write_text(lines, encoding="utf-8")
    else:
        out.write(lines)


# --------------------------------------------------------------------------- TextGrid

def read_textgrid(path: PathLike, tier: str | None = None) -> list[Segment]:
    """Segments of one interval tier of a Praat TextGrid (long or short text format).

    Args:
        path: the TextGrid.
        tier: tier name; default the file's only interval tier (an error if there are several).

    Returns:
        list[Segment]: the intervals with non-blank text (blanks inside a label become ``_``).

    Raises:
        LabelError: unreadable or malformed file, missing tier, or an ambiguous default tier.
    """
    from praatio import textgrid as tg_mod

    p = Path(path)
    if not p.is_file():
        raise _err(p, None, "file not found")
    try:
        tg = tg_mod.openTextgrid(str(p), includeEmptyIntervals=False)
    except Exception as exc:  # praatio raises ParsingError, IndexError, ValueError... on bad input
        reason = one_line(exc) or type(exc).__name__
        raise _err(p, None, f"not a valid TextGrid ({reason})") from None
    interval_tiers = [n for n in tg.tierNames if isinstance(tg.getTier(n), tg_mod.IntervalTier)]
    if tier is None:
        if len(interval_tiers) != 1:
            found = ", ".join(repr(n) for n in interval_tiers) or "none"
            raise _err(p, None, f"expected exactly one interval tier (found {found}); set the tier name (data.tier)")
        tier = interval_tiers[0]
    if tier not in tg.tierNames:
        raise _err(p, None, f"no tier {tier!r} (tiers: {', '.join(repr(n) for n in tg.tierNames) or 'none'})")
    if tier not in interval_tiers:
        raise _err(p, None, f"tier {tier!r} is a point tier; frame labels need an interval tier")
    out = []
    for entry in tg.getTier(tier).entries:
        label = "_".join(str(entry.label).split())
        if label:
            out.append(Segment(float(entry.start), float(entry.end), label))
    return sorted(out)


def write_textgrid(path: PathLike, tiers: Mapping[str, Sequence[Segment]], duration: float) -> None:
    """Write one interval tier per entry of ``tiers`` (name -> segments) as a long TextGrid.

    Overlapping segments inside one tier are not representable; write them to separate tiers.
    """
    from praatio import textgrid as tg_mod

    tg = tg_mod.Textgrid()
    end = max([duration] + [s.end for segs in tiers.values() for s in segs])
    for name, segs in tiers.items():
        entries = [(s.start, s.end, s.label) for s in sorted(segs) if s.end > s.start]
        tg.addTier(tg_mod.IntervalTier(name, entries, 0.0, end))
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)


# --------------------------------------------------------------------------- frame-label files

def read_frame_labels(path: PathLike, frame_shift: float = 0.01) -> list[Segment]:
    """Segments from a per-frame label file (see the module docstring for the format).

    Raises:
        LabelError: a bad header, an empty file, or a label with blanks (``file:line: problem``).
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise _err(p, None, "not UTF-8 text") from None
    except OSError as exc:
        raise _err(p, None, f"cannot read ({exc.strerror or exc})") from None
    shift = frame_shift
    first = 0
    if lines and lines[0].startswith("#"):
        words = lines[0][1:].split()
        if len(words) != 2 or words[0] != "frame_shift":
            raise _err(p, 1, f"header must be '# frame_shift <seconds>', got {lines[0]!r}")
        try:
            shift = float(words[1])
        except ValueError:
            raise _err(p, 1, f"frame_shift must be a number, got {words[1]!r}") from None
        if not (math.isfinite(shift) and shift > 0):
            raise _err(p, 1, f"frame_shift must be > 0, got {words[1]}")
        first = 1
    if not shift > 0:
        raise ValueError(f"frame_shift must be > 0, got {frame_shift}")
    runs: dict[str, int] = {}  # label -> first frame of its current run
    out: list[Segment] = []
    frame = -1
    for frame, raw in enumerate(lines[first:]):
        line = raw.strip()
        if not line:
            raise _err(p, frame + first + 1, f"empty line (write '{NO_LABEL}' for a frame without a class)")
        labels = set() if line == NO_LABEL else {x.strip() for x in line.split(",")}
        for label in labels:
            if not label or any(c.isspace() for c in label) or label == NO_LABEL:
                raise _err(p, frame + first + 1, f"bad label list {line!r} (classes separated by commas, no blanks)")
        for label in list(runs):
            if label not in labels:
                out.append(Segment(round(runs.pop(label) * shift, 6), round(frame * shift, 6), label))
        for label in labels:
            runs.setdefault(label, frame)
    if frame < 0:
        raise _err(p, None, "no frames")
    for label, start in runs.items():
        out.append(Segment(round(start * shift, 6), round((frame + 1) * shift, 6), label))
    return sorted(out)


def write_frame_labels(path: PathLike, segments: Sequence[Segment], num_frames: int, frame_shift: float = 0.01) -> None:
    """Write segments as a per-frame label file (frame ``i`` takes the labels active at its centre)."""
    centres = (np.arange(num_frames) + 0.5) * frame_shift
    rows: list[list[str]] = [[] for _ in range(num_frames)]
    for s in sorted(segments):
        for i in np.nonzero((centres >= s.start) & (centres < s.end))[0]:
            rows[i].append(s.label)
    body = "".join((",".join(r) if r else NO_LABEL) + "\n" for r in rows)
    Path(path).write_text(f"# frame_shift {frame_shift}\n{body}", encoding="utf-8")


def read_label_file(path: PathLike, *, tier: str | None = None, frame_shift: float = 0.01) -> list[Segment] | dict[str, list[Segment]]:
    """Read any supported label file, chosen by suffix: a list of segments (TextGrid, frames) or,
    for RTTM, ``{file_id: segments}``."""
    p = Path(path)
    kind = LABEL_SUFFIXES.get(p.suffix.lower())
    if kind == "rttm":
        return read_rttm(p)
    if kind == "textgrid":
        return read_textgrid(p, tier)
    if kind == "frames":
        return read_frame_labels(p, frame_shift)
    raise _err(p, None, f"unknown label format {p.suffix!r} (expected {', '.join(LABEL_SUFFIXES)})")


# --------------------------------------------------------------------------- frame grids

@dataclass(frozen=True)
class FrameGrid:
    """Times of a model's output frames: frame ``j`` is centred at ``offset + j * hop`` seconds
    and stands for ``[centre - hop / 2, centre + hop / 2)``."""

    hop: float
    offset: float

    def __post_init__(self) -> None:
        if not self.hop > 0 or self.offset < 0:
            raise ValueError(f"FrameGrid needs hop > 0 and offset >= 0, got hop={self.hop}, offset={self.offset}")

    @classmethod
    def for_model(cls, frame_shift: float, frame_length: float, stride: int, receptive_field: int) -> "FrameGrid":
        """Grid of an encoder over Kaldi frames: input frame ``i`` is centred at
        ``i * frame_shift + frame_length / 2``; output ``j`` reads inputs
        ``stride * j .. stride * j + receptive_field - 1`` and sits at their centre."""
        return cls(hop=frame_shift * stride, offset=frame_length / 2 + frame_shift * (receptive_field - 1) / 2)

    def to_dict(self) -> dict[str, float]:
        """``{"hop", "offset"}``: how a model file stores the grid (:meth:`from_dict` reads it)."""
        return {"hop": self.hop, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FrameGrid":
        """The grid stored by :meth:`to_dict` (KeyError / TypeError / ValueError if it is not one)."""
        return cls(hop=float(data["hop"]), offset=float(data["offset"]))

    def centres(self, num_frames: int) -> np.ndarray:
        """(num_frames,) float64 centre times."""
        return self.offset + self.hop * np.arange(num_frames, dtype=np.float64)

    def to_segments(self, active: np.ndarray, label: str, duration: float | None = None) -> list[Segment]:
        """Runs of ``True`` in the (num_frames,) bool array ``active`` as segments (times in ms).

        The first frame's segment is extended to 0 s and the last frame's to ``duration`` when
        given (the frames at the edges stand for the audio beyond their centres).
        """
        active = np.asarray(active, dtype=bool)
        n = active.shape[0]
        if n == 0 or not active.any():
            return []
        padded = np.concatenate([[False], active, [False]])
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        starts, ends = edges[0::2], edges[1::2]  # frame j in run [starts, ends)
        centres = self.centres(n)
        out = []
        for a, b in zip(starts.tolist(), ends.tolist()):
            t0 = 0.0 if a == 0 else centres[a] - self.hop / 2
            t1 = centres[b - 1] + self.hop / 2
            if b == n and duration is not None:
                t1 = max(t1, duration)
            if duration is not None:
                t1 = min(t1, duration)
            if t1 > t0:
                out.append(Segment(round(max(t0, 0.0), 3), round(t1, 3), label))  # ms, as every writer
        return out


def _active_at(segments: Sequence[Segment], times: np.ndarray) -> np.ndarray:
    """(len(times),) bool: times inside any of ``segments``."""
    out = np.zeros(times.shape[0], dtype=bool)
    for s in segments:
        lo, hi = np.searchsorted(times, [s.start, s.end], side="left")
        out[lo:hi] = True
    return out


def frame_targets(
    segments: Sequence[Segment],
    classes: Sequence[str],
    grid: FrameGrid,
    num_frames: int,
    multi_label: bool,
    source: str = "labels",
) -> Tensor:
    """Training targets at the centres of a model's output frames.

    Args:
        segments: the recording's segments (labels outside ``classes`` are an error).
        classes: the label set, in model order.
        grid: the model's output frame times.
        num_frames: output frames T of the recording.
        multi_label: ``True``: (T, K) float 0/1, any number of classes per frame;
            ``False``: (T,) int64, 0 for no class and ``k + 1`` for ``classes[k]``.
        source: named in error messages (the label file).

    Raises:
        LabelError: an unknown label, or (single-label) two classes active in one frame.
    """
    index = {c: k for k, c in enumerate(classes)}
    times = grid.centres(num_frames)
    by_class: dict[str, list[Segment]] = {}
    for s in segments:
        if s.label not in index:
            raise LabelError(f"{source}: label {s.label!r} is not in the model's classes {list(classes)} (map it with data.label_map)")
        by_class.setdefault(s.label, []).append(s)
    multi = np.zeros((num_frames, len(classes)), dtype=np.float32)
    for label, segs in by_class.items():
        multi[:, index[label]] = _active_at(segs, times)
    if multi_label:
        return torch.from_numpy(multi)
    counts = multi.sum(1)
    if (counts > 1).any():
        j = int(np.flatnonzero(counts > 1)[0])
        both = [classes[k] for k in np.flatnonzero(multi[j])]
        raise LabelError(f"{source}: classes {both} overlap at {times[j]:.2f} s; a single-label model needs one class "
                         "per frame (use model.mode: multi, or merge them with data.label_map)")
    single = np.where(counts > 0, multi.argmax(1) + 1, 0)
    return torch.from_numpy(single.astype(np.int64))


def segments_to_frames(segments: Sequence[Segment], classes: Sequence[str], step: float, duration: float) -> np.ndarray:
    """(N, K) bool activity of each class on a regular grid: frame ``i`` is ``[i*step, (i+1)*step)``,
    active when its centre lies in a segment; ``N = round(duration / step)``. Labels not in
    ``classes`` are ignored."""
    n = int(round(duration / step))
    times = (np.arange(n) + 0.5) * step
    out = np.zeros((n, len(classes)), dtype=bool)
    for k, c in enumerate(classes):
        out[:, k] = _active_at([s for s in segments if s.label == c], times)
    return out
