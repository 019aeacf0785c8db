"""Utterance manifests: what audio a task reads, with speaker and transcript.

A :class:`Manifest` is an immutable sequence of :class:`Utterance` records with
unique ids. Manifests are read and written by

* :mod:`speechattn.data.kaldi` - Kaldi-style data directories (:func:`read_kaldi_dir`),
* :mod:`speechattn.data.manifest_io` - CSV and JSON(-lines) manifest files, and
  :func:`load_manifest`, which picks the reader from the path.

CSV and JSON manifests use the fields :data:`CORE_FIELDS` (``id``, ``path``,
``speaker``, ``text``, ``duration``); other fields go to ``Utterance.extra``.
Every malformed line raises :class:`ManifestError` with a ``file:line: problem``
message (:func:`error_at`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

__all__ = ["Manifest", "ManifestError", "Utterance"]

PathLike = str | os.PathLike[str]

#: Fields of a CSV/JSON manifest that map onto :class:`Utterance` attributes.
CORE_FIELDS = ("id", "path", "speaker", "text", "duration")


class ManifestError(ValueError):
    """A manifest file or data directory is malformed (``file:line: problem``)."""


def error_at(file: PathLike, line: int | None, problem: str) -> ManifestError:
    """A :class:`ManifestError` saying ``file:line: problem`` (``file: problem`` without a line)."""
    return ManifestError(f"{file}:{line}: {problem}" if line is not None else f"{file}: {problem}")


def parse_duration(value: Any, file: PathLike, line: int | None) -> float:
    """``value`` as a duration in seconds (a finite number >= 0), else :func:`error_at` ``file:line``."""
    if isinstance(value, bool):
        raise error_at(file, line, f"duration must be a number, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise error_at(file, line, f"duration must be a number, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise error_at(file, line, f"duration must be a finite number >= 0, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Utterance:
    """One audio file (or utterance) with its labels.

    Equality and hashing use ``id``, ``path``, ``speaker``, ``text`` and
    ``duration``; ``extra`` (free-form metadata such as gender or age) takes no
    part in them, so utterances can be put in sets and used as dict keys.
    """

    id: str
    path: Path
    speaker: str | None = None
    text: str | None = None
    duration: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"utterance id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))


class Manifest(Sequence[Utterance]):
    """An ordered collection of utterances with unique ids.

    Indexing with an int gives an :class:`Utterance`, with a slice a new
    :class:`Manifest`, and with a string the utterance of that id.
    """

    __slots__ = ("_utts", "_index")

    def __init__(self, utterances: Iterable[Utterance] = ()) -> None:
        self._utts: tuple[Utterance, ...] = tuple(utterances)
        self._index: dict[str, int] = {}
        for i, utt in enumerate(self._utts):
            if not isinstance(utt, Utterance):
                raise TypeError(f"Manifest holds Utterance objects, got {type(utt).__name__}")
            if utt.id in self._index:
                raise ManifestError(f"duplicate utterance id {utt.id!r}")
            self._index[utt.id] = i

    # -- sequence protocol
    def __len__(self) -> int:
        return len(self._utts)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self._utts)

    @overload
    def __getitem__(self, key: int) -> Utterance: ...
    @overload
    def __getitem__(self, key: str) -> Utterance: ...
    @overload
    def __getitem__(self, key: slice) -> Manifest: ...
    def __getitem__(self, key: int | str | slice) -> Utterance | Manifest:
        if isinstance(key, str):
            try:
                return self._utts[self._index[key]]
            except KeyError:
                raise KeyError(f"no utterance with id {key!r}") from None
        if isinstance(key, slice):
            return Manifest(self._utts[key])
        return self._utts[key]

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self._index
        if isinstance(item, Utterance):
            i = self._index.get(item.id)
            return i is not None and self._utts[i] == item
        return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return self._utts == other._utts

    def __hash__(self) -> int:
        return hash(self._utts)

    def __add__(self, other: Manifest) -> Manifest:
        return Manifest((*self._utts, *other._utts))

    def __repr__(self) -> str:
        return f"Manifest({len(self)} utterances, {len(self.speakers())} speakers)"

    # -- queries
    @property
    def ids(self) -> list[str]:
        """Utterance ids in manifest order."""
        return [u.id for u in self._utts]

    def get(self, utt_id: str, default: Utterance | None = None) -> Utterance | None:
        """The utterance with id ``utt_id``, or ``default``."""
        i = self._index.get(utt_id)
        return default if i is None else self._utts[i]

    def speakers(self) -> list[str]:
        """Sorted distinct speaker labels (utterances without a speaker are ignored)."""
        return sorted({u.speaker for u in self._utts if u.speaker is not None})

    def by_speaker(self) -> dict[str, Manifest]:
        """One manifest per speaker (sorted by speaker; manifest order within each)."""
        groups: dict[str, list[Utterance]] = {}
        for u in self._utts:
            if u.speaker is not None:
                groups.setdefault(u.speaker, []).append(u)
        return {spk: Manifest(groups[spk]) for spk in sorted(groups)}

    def filter(
        self,
        predicate: Callable[[Utterance], bool] | None = None,
        *,
        speakers: Iterable[str] | None = None,
        min_duration: float | None = None,
        max_duration: float | None = None,
    ) -> Manifest:
        """Utterances that pass every given condition, in manifest order.

        Duration bounds are inclusive; utterances of unknown duration fail them.
        """
        keep_speakers = None if speakers is None else set(speakers)

        def ok(u: Utterance) -> bool:
            if keep_speakers is not None and u.speaker not in keep_speakers:
                return False
            if min_duration is not None and (u.duration is None or u.duration < min_duration):
                return False
            if max_duration is not None and (u.duration is None or u.duration > max_duration):
                return False
            return predicate is None or bool(predicate(u))

        return Manifest(u for u in self._utts if ok(u))

    def subset(self, ids: Iterable[str]) -> Manifest:
        """The utterances with the given ids, in the order given.

        Raises:
            KeyError: some ids are not in the manifest (the message lists a few).
        """
        ids = list(ids)
        missing = [i for i in ids if i not in self._index]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise KeyError(f"{len(missing)} ids not in the manifest: {shown}{more}")
        return Manifest(self._utts[self._index[i]] for i in ids)

    def check_files(self) -> list[Path]:
        """Paths of the utterances whose audio file does not exist."""
        return [u.path for u in self._utts if not u.path.is_file()]

    @property
    def total_duration(self) -> float | None:
        """Sum of durations in seconds, or None when any duration is unknown."""
        if any(u.duration is None for u in self._utts):
            return None
        return float(sum(u.duration for u in self._utts))  # type: ignore[misc]

    def with_durations(self) -> Manifest:
        """Copy with missing durations read from the audio headers (soundfile)."""
        import soundfile

        out = []
        for u in self._utts:
            if u.duration is None:
                try:
                    info = soundfile.info(str(u.path))
                except Exception as exc:  # noqa: BLE001 - soundfile raises several types
                    raise ManifestError(f"{u.path}: cannot read audio header for {u.id!r}: {exc}") from exc
                u = replace(u, duration=info.frames / info.samplerate)
            out.append(u)
        return Manifest(out)
