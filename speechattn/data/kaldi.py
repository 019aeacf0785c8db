"""Kaldi-style data directories as :class:`~speechattn.data.manifest.Manifest` objects.

A data directory holds ``wav.scp`` and ``utt2spk`` (required), and optionally
``text``, ``spk2gender``, ``spk2age`` and ``utt2dur``; :func:`read_kaldi_dir`
reads it, with ``file:line`` in every error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from speechattn.data.manifest import (
    Manifest,
    ManifestError,
    PathLike,
    Utterance,
    error_at,
    parse_duration,
)

__all__ = ["read_kaldi_dir"]

_PIPE_RE = re.compile(r"\|\s*$|^\s*\|")


def _read_table(path: Path, *, allow_empty_value: bool = False) -> dict[str, tuple[int, str]]:
    """Read a Kaldi ``key value...`` table: key -> (line number, rest of line)."""
    table: dict[str, tuple[int, str]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error_at(path, None, f"not UTF-8 text ({exc})") from None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split(maxsplit=1)
        if len(parts) == 1 and not allow_empty_value:
            raise error_at(path, lineno, f"expected '<key> <value>', got {line!r}")
        key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if key in table:
            raise error_at(path, lineno, f"duplicate key {key!r} (first on line {table[key][0]})")
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
            raise error_at(wav_scp, lineno, f"piped commands are not supported (utterance {utt!r}); convert the audio to files")
        if len(rx.split()) > 1:
            raise error_at(wav_scp, lineno, f"expected a single audio path for {utt!r}, got {rx!r} (commands are not supported)")
        if re.search(r"\.ark:\d+$", rx):
            raise error_at(wav_scp, lineno, f"ark offsets are not supported (utterance {utt!r})")

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
                raise error_at(d / "utt2dur", lineno, f"utterance {utt!r} is not in wav.scp")
            durations[utt] = parse_duration(value, d / "utt2dur", lineno)

    spk_extra: dict[str, dict[str, Any]] = {}
    for name, key in (("spk2gender", "gender"), ("spk2age", "age")):
        f = d / name
        if f.is_file():
            for spk, (lineno, value) in _read_table(f).items():
                if len(value.split()) != 1:
                    raise error_at(f, lineno, f"expected '<speaker> <{key}>', got {spk} {value!r}")
                spk_extra.setdefault(spk, {})[key] = int(value) if key == "age" and value.isdigit() else value

    utts = []
    for utt, (_, rx) in wavs.items():
        audio = Path(rx)
        speaker = utt2spk[utt][1]
        if len(speaker.split()) != 1:
            raise error_at(utt2spk_file, utt2spk[utt][0], f"expected '<utterance> <speaker>', got {utt} {speaker!r}")
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
            raise error_at(file, lineno, f"utterance {utt!r} is not in wav.scp")
    for utt, (lineno, _) in wavs.items():
        if utt not in table:
            raise error_at(file, None, f"no {what} for utterance {utt!r} ({wav_scp.name} line {lineno})")
