"""Manifest files: CSV and JSON(-lines) readers and writers, and :func:`load_manifest`.

Manifests are read from

* a CSV file with a header (:func:`read_csv_manifest`),
* a JSON-lines file, one object per line (:func:`read_jsonl_manifest`), or a
  ``.json`` file holding a list of such objects (:func:`read_json_manifest`),
* a Kaldi-style data directory (:func:`speechattn.data.kaldi.read_kaldi_dir`),

or by :func:`load_manifest`, which picks the reader from the path. CSV and JSON
manifests use the fields ``id``, ``path`` (relative to the manifest's folder
unless absolute), ``speaker``, ``text`` and ``duration``; other fields go to
``Utterance.extra``. Every malformed line raises :class:`~speechattn.data.manifest.ManifestError`
with a ``file:line: problem`` message. The writers replace files atomically.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from speechattn.data.kaldi import read_kaldi_dir
from speechattn.data.manifest import (
    CORE_FIELDS,
    Manifest,
    ManifestError,
    PathLike,
    Utterance,
    error_at,
    parse_duration,
)
from speechattn.utils.files import atomic_open_write

__all__ = [
    "load_manifest",
    "read_csv_manifest",
    "read_json_manifest",
    "read_jsonl_manifest",
    "write_csv_manifest",
    "write_jsonl_manifest",
]


# --------------------------------------------------------------------------- CSV / JSON

def _record_to_utterance(record: Mapping[str, Any], base: Path, file: PathLike, line: int | None) -> Utterance:
    """Build an utterance from a CSV row or JSON object (core fields + extra)."""
    for key in ("id", "path"):
        value = record.get(key)
        if value is None or value == "":
            raise error_at(file, line, f"missing {key!r}")
        if not isinstance(value, str):
            raise error_at(file, line, f"{key!r} must be a string, got {value!r}")
    for key in ("speaker", "text"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise error_at(file, line, f"{key!r} must be a string, got {value!r}")
    duration = record.get("duration")
    audio = Path(record["path"])
    return Utterance(
        id=record["id"],
        path=audio if audio.is_absolute() else base / audio,
        speaker=record.get("speaker") or None,
        text=record.get("text"),
        duration=None if duration in (None, "") else parse_duration(duration, file, line),
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
            raise error_at(file, line, f"duplicate id {utt.id!r}{first}")
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
                raise error_at(file, 1, "empty file, expected a header row with 'id' and 'path'")
            for col in ("id", "path"):
                if col not in header:
                    raise error_at(file, 1, f"missing column {col!r} in header {header}")
            if len(set(header)) != len(header):
                raise error_at(file, 1, f"duplicate column names in header {header}")
            for row in reader:
                line = reader.line_num  # last physical line of the row
                if None in row:
                    raise error_at(file, line, f"{len(header) + len(row[None])} fields, header has {len(header)}")  # type: ignore[index]
                if any(v is None for v in row.values()):
                    n = sum(v is not None for v in row.values())
                    raise error_at(file, line, f"{n} fields, header has {len(header)}")
                if not any(row.values()):
                    continue
                yield line, {k: v for k, v in row.items() if v != ""}

    try:
        return _manifest_from_records(rows(), file)
    except csv.Error as exc:
        raise error_at(file, None, f"malformed CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise error_at(file, None, f"not UTF-8 text ({exc})") from None


def read_jsonl_manifest(path: PathLike) -> Manifest:
    """Read a JSON-lines manifest: one object per line, blank lines ignored."""
    file = Path(path)

    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise error_at(file, None, f"not UTF-8 text ({exc})") from None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error_at(file, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise error_at(file, lineno, f"expected a JSON object, got {type(obj).__name__}")
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
        raise error_at(file, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(data, list):
        items: list[tuple[int | None, Mapping[str, Any]]] = []
        for i, obj in enumerate(data):
            if not isinstance(obj, dict):
                raise error_at(file, None, f"item {i}: expected a JSON object, got {type(obj).__name__}")
            items.append((None, obj))
        return _manifest_from_records(items, file)
    if isinstance(data, dict):
        items = []
        for utt_id, obj in data.items():
            if not isinstance(obj, dict):
                raise error_at(file, None, f"entry {utt_id!r}: expected a JSON object, got {type(obj).__name__}")
            if "id" in obj and obj["id"] != utt_id:
                raise error_at(file, None, f"entry {utt_id!r}: its 'id' field says {obj['id']!r}")
            items.append((None, {**obj, "id": utt_id}))
        return _manifest_from_records(items, file)
    raise error_at(file, None, f"expected a list or an object, got {type(data).__name__}")


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
