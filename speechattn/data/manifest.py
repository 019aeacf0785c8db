"""Utterance manifests: what audio a task reads, with speaker and transcript.

A :class:`Manifest` is an immutable sequence of :class:`Utterance` records with
unique ids. It is read from

* a Kaldi-style data directory (``wav.scp``, ``utt2spk``, optional ``text``,
  ``spk2gender``, ``spk2age``, ``utt2dur``) with :func:`read_kaldi_dir`,
* a CSV file with a header (:func:`read_csv_manifest`),
* a JSON-lines file, one object per line (:func:`read_jsonl_manifest`), or a
  ``.json`` file holding a list of such objects,

or by :func:`load_manifest`, which picks the reader from the path. CSV and JSON
manifests use the fields ``id``, ``path`` (relative to the manifest's folder
unless absolute), ``speaker``, ``text`` and ``duration``; other fields go to
``Utterance.extra``. Every malformed line raises :class:`ManifestError` with a
``file:line: problem`` message.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

from speechattn.utils.files import atomic_open_write

__all__ = [
    "Manifest",
    "ManifestError",
    "Utterance",
    "load_manifest",
    "read_csv_manifest",
    "read_json_manifest",
    "read_jsonl_manifest",
    "read_kaldi_dir",
    "write_csv_manifest",
    "write_jsonl_manifest",
]

PathLike = str | os.PathLike[str]

#: Fields of a CSV/JSON manifest that map onto :class:`Utterance` attributes.
CORE_FIELDS = ("id", "path", "speaker", "text", "duration")


class ManifestError(ValueError):
    """A manifest file or data directory is malformed (``file:line: problem``)."""


def _err(file: PathLike, line: int | None, problem: str) -> ManifestError:
    return ManifestError(f"{file}:{line}: {problem}" if line is not None else f"{file}: {problem}")


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


# --------------------------------------------------------------------------- Kaldi

_PIPE_RE = re.compile(r"\|\s*$|^\s*\|")


def _read_table(path: Path, *, allow_empty_value: bool = False) -> dict[str, tuple[int, str]]:
    """Read a Kaldi ``key value...`` table: key -> (line number, rest of line)."""
    table: dict[str, tuple[int, str]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _err(path, None, f"not UTF-8 text ({exc})") from None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split(maxsplit=1)
        if len(parts) == 1 and not allow_empty_value:
            raise _err(path, lineno, f"expected '<key> <value>', got {line!r}")
        key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if key in table:
            raise _err(path, lineno, f"duplicate key {key!r} (first on line {table[key][0]})")
        table[key] = (lineno, value)
    return table


def read_kaldi_dir(path: PathLike, audio_root: PathLike | None = None) -> Manifest:
    """Read a Kaldi-style data directory.

    Files: ``wav.scp`` (``<utt> <audio path>``, required), ``utt2spk``
    (required, one entry per utterance), ``text`` (optional; when present, one
    entry per utterance, the transcript may be empty), ``spk2gender`` and
    ``spk2age`` (optional; stored as ``extra["gender"]`` and ``extra["age"]``),
    ``utt2dur`` (optional durations in seconds). Relative audio paths are
    resolved against ``audio_root``, by default the parent of the directory.

    Pipes and commands in ``wav.scp`` (``sox ... |``), ark offsets and
    ``segments`` files are not supported.

    Raises:
        ManifestError: missing files, malformed lines, or inconsistent entries,
            with ``file:line`` where there is one.
    """
    d = Path(path)
    if not d.is_dir():
        raise ManifestError(f"{d}: not a directory")
    wav_scp = d / "wav.scp"
    if not wav_scp.is_file():
        raise ManifestError(f"{d}: not a Kaldi data directory (no wav.scp)")
    if (d / "segments").exists():
        raise ManifestError(f"{d / 'segments'}: segment files are not supported; cut the audio into files first")
    root = Path(audio_root) if audio_root is not None else d.absolute().parent

    wavs = _read_table(wav_scp)
    for utt, (lineno, rx) in wavs.items():
        if _PIPE_RE.search(rx):
            raise _err(wav_scp, lineno, f"piped commands are not supported (utterance {utt!r}); convert the audio to files")
        if len(rx.split()) > 1:
            raise _err(wav_scp, lineno, f"expected a single audio path for {utt!r}, got {rx!r} (commands are not supported)")
        if re.search(r"\.ark:\d+$", rx):
            raise _err(wav_scp, lineno, f"ark offsets are not supported (utterance {utt!r})")

    utt2spk_file = d / "utt2spk"
    if not utt2spk_file.is_file():
        raise ManifestError(f"{d}: missing utt2spk (required in a Kaldi data directory)")
    utt2spk = _read_table(utt2spk_file)
    _check_keys(utt2spk_file, utt2spk, wavs, wav_scp, what="speaker")

    texts: dict[str, tuple[int, str]] | None = None
    if (d / "text").is_file():
        texts = _read_table(d / "text", allow_empty_value=True)
        _check_keys(d / "text", texts, wavs, wav_scp, what="transcript")

    durations: dict[str, float] = {}
    if (d / "utt2dur").is_file():
        for utt, (lineno, value) in _read_table(d / "utt2dur").items():
            if utt not in wavs:
                raise _err(d / "utt2dur", lineno, f"utterance {utt!r} is not in wav.scp")
            durations[utt] = _parse_duration(value, d / "utt2dur", lineno)

    spk_extra: dict[str, dict[str, Any]] = {}
    for name, key in (("spk2gender", "gender"), ("spk2age", "age")):
        f = d / name
        if f.is_file():
            for spk, (lineno, value) in _read_table(f).items():
                if len(value.split()) != 1:
                    raise _err(f, lineno, f"expected '<speaker> <{key}>', got {spk} {value!r}")
                spk_extra.setdefault(spk, {})[key] = int(value) if key == "age" and value.isdigit() else value

    utts = []
    for utt, (_, rx) in wavs.items():
        audio = Path(rx)
        speaker = utt2spk[utt][1]
        if len(speaker.split()) != 1:
            raise _err(utt2spk_file, utt2spk[utt][0], f"expected '<utterance> <speaker>', got {utt} {speaker!r}")
        utts.append(
            Utterance(
                id=utt,
                path=audio if audio.is_absolute() else root / audio,
                speaker=speaker,
                text=None if texts is None else texts[utt][1],
                duration=durations.get(utt),
                extra=dict(spk_extra.get(speaker, {})),
            )
        )
    return Manifest(utts)


def _check_keys(
    file: Path, table: Mapping[str, tuple[int, str]], wavs: Mapping[str, tuple[int, str]], wav_scp: Path, what: str
) -> None:
    for utt, (lineno, _) in table.items():
        if utt not in wavs:
            raise _err(file, lineno, f"utterance {utt!r} is not in wav.scp")
    for utt, (lineno, _) in wavs.items():
        if utt not in table:
            raise _err(file, None, f"no {what} for utterance {utt!r} ({wav_scp.name} line {lineno})")


def _parse_duration(value: Any, file: PathLike, line: int | None) -> float:
    if isinstance(value, bool):
        raise _err(file, line, f"duration must be a number, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise _err(file, line, f"duration must be a number, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise _err(file, line, f"duration must be a finite number >= 0, got {value!r}")
    return seconds


# --------------------------------------------------------------------------- CSV / JSON

def _record_to_utterance(record: Mapping[str, Any], base: Path, file: PathLike, line: int | None) -> Utterance:
    """Build an utterance from a CSV row or JSON object (core fields + extra)."""
    for key in ("id", "path"):
        value = record.get(key)
        if value is None or value == "":
            raise _err(file, line, f"missing {key!r}")
        if not isinstance(value, str):
            raise _err(file, line, f"{key!r} must be a string, got {value!r}")
    for key in ("speaker", "text"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise _err(file, line, f"{key!r} must be a string, got {value!r}")
    duration = record.get("duration")
    audio = Path(record["path"])
    return Utterance(
        id=record["id"],
        path=audio if audio.is_absolute() else base / audio,
        speaker=record.get("speaker") or None,
        text=record.get("text"),
        duration=None if duration in (None, "") else _parse_duration(duration, file, line),
        extra={k: v for k, v in record.items() if k not in CORE_FIELDS},
    )


def _manifest_from_records(records: Iterable[tuple[int | None, Mapping[str, Any]]], file: Path) -> Manifest:
    base = file.absolute().parent
    utts: list[Utterance] = []
    seen: dict[str, int | None] = {}
    for line, record in records:
        utt = _record_to_utterance(record, base, file, line)
        if utt.id in seen:
            first = f" (first on line {seen[utt.id]})" if seen[utt.id] is not None else ""
            raise _err(file, line, f"duplicate id {utt.id!r}{first}")
        seen[utt.id] = line
        utts.append(utt)
    return Manifest(utts)


def read_csv_manifest(path: PathLike) -> Manifest:
    """Read a CSV manifest with a header row (``id`` and ``path`` columns required).

    Empty cells are treated as missing (so an empty transcript reads as None);
    extra columns go to ``extra`` as strings.
    """
    file = Path(path)

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        with file.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            if not header:
                raise _err(file, 1, "empty file, expected a header row with 'id' and 'path'")
            for col in ("id", "path"):
                if col not in header:
                    raise _err(file, 1, f"missing column {col!r} in header {header}")
            if len(set(header)) != len(header):
                raise _err(file, 1, f"duplicate column names in header {header}")
            for row in reader:
                line = reader.line_num  # last physical line of the row
                if None in row:
                    raise _err(file, line, f"{len(header) + len(row[None])} fields, header has {len(header)}")  # type: ignore[index]
                if any(v is None for v in row.values()):
                    n = sum(v is not None for v in row.values())
                    raise _err(file, line, f"{n} fields, header has {len(header)}")
                if not any(row.values()):
                    continue
                yield line, {k: v for k, v in row.items() if v != ""}

    try:
        return _manifest_from_records(rows(), file)
    except csv.Error as exc:
        raise _err(file, None, f"malformed CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise _err(file, None, f"not UTF-8 text ({exc})") from None


def read_jsonl_manifest(path: PathLike) -> Manifest:
    """Read a JSON-lines manifest: one object per line, blank lines ignored."""
    file = Path(path)

    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise _err(file, None, f"not UTF-8 text ({exc})") from None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _err(file, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise _err(file, lineno, f"expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj

    return _manifest_from_records(records(), file)


def read_json_manifest(path: PathLike) -> Manifest:
    """Read a ``.json`` manifest: a list of objects, or an object mapping id -> object.

    A file with one object per line (JSON lines) is read as such.
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("{") and exc.msg == "Extra data":
            return read_jsonl_manifest(file)
        raise _err(file, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(data, list):
        items: list[tuple[int | None, Mapping[str, Any]]] = []
        for i, obj in enumerate(data):
            if not isinstance(obj, dict):
                raise _err(file, None, f"item {i}: expected a JSON object, got {type(obj).__name__}")
            items.append((None, obj))
        return _manifest_from_records(items, file)
    if isinstance(data, dict):
        items = []
        for utt_id, obj in data.items():
            if not isinstance(obj, dict):
                raise _err(file, None, f"entry {utt_id!r}: expected a JSON object, got {type(obj).__name__}")
            if "id" in obj and obj["id"] != utt_id:
                raise _err(file, None, f"entry {utt_id!r}: its 'id' field says {obj['id']!r}")
            items.append((None, {**obj, "id": utt_id}))
        return _manifest_from_records(items, file)
    raise _err(file, None, f"expected a list or an object, got {type(data).__name__}")


def load_manifest(path: PathLike, **kwargs: Any) -> Manifest:
    """Read a manifest, choosing the reader from the path.

    A directory with ``wav.scp`` is read as a Kaldi data directory (``kwargs``
    go to :func:`read_kaldi_dir`), ``.csv`` as CSV, ``.jsonl`` as JSON lines
    and ``.json`` as JSON.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "wav.scp").is_file():
            return read_kaldi_dir(p, **kwargs)
        raise ManifestError(f"{p}: a directory without wav.scp is not a manifest")
    if not p.exists():
        raise ManifestError(f"{p}: no such file or directory")
    suffix = p.suffix.lower()
    if kwargs:
        raise TypeError(f"unexpected options for a {suffix} manifest: {sorted(kwargs)}")
    if suffix == ".csv":
        return read_csv_manifest(p)
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl_manifest(p)
    if suffix == ".json":
        return read_json_manifest(p)
    raise ManifestError(f"{p}: unknown manifest format {suffix!r} (expected a Kaldi dir, .csv, .jsonl or .json)")


# --------------------------------------------------------------------------- writers

def _rel_path(audio: Path, base: Path) -> str:
    """``audio`` relative to ``base`` when it lies below it, else absolute."""
    absolute = audio if audio.is_absolute() else audio.absolute()
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return str(absolute)


def _record(u: Utterance, base: Path) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": u.id, "path": _rel_path(u.path, base)}
    for key in ("speaker", "text", "duration"):
        value = getattr(u, key)
        if value is not None:
            rec[key] = value
    for key, value in u.extra.items():
        if key in CORE_FIELDS:
            raise ManifestError(f"utterance {u.id!r}: extra key {key!r} clashes with a manifest field")
        rec[key] = value
    return rec


def write_jsonl_manifest(manifest: Iterable[Utterance], path: PathLike) -> Path:
    """Write a JSON-lines manifest; audio paths below its folder are written relative."""
    out = Path(path)
    base = out.absolute().parent

    def write(fh: Any) -> None:
        for u in manifest:
            fh.write(json.dumps(_record(u, base), ensure_ascii=False) + "\n")

    return atomic_open_write(out, write)


def write_csv_manifest(manifest: Iterable[Utterance], path: PathLike) -> Path:
    """Write a CSV manifest (columns: core fields, then sorted extra keys).

    Extra values that are not strings are written as JSON text (read back as strings).
    """
    out = Path(path)
    base = out.absolute().parent
    records = [_record(u, base) for u in manifest]
    extra_cols = sorted({k for r in records for k in r} - set(CORE_FIELDS))
    columns = [*CORE_FIELDS, *extra_cols]

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, float):
            return repr(value)
        return json.dumps(value, ensure_ascii=False)

    def write(fh: Any) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for r in records:
            writer.writerow([cell(r.get(c)) for c in columns])

    return atomic_open_write(out, write)
