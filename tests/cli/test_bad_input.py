"""Bad (and merely unusual) input through every command that reads audio.

Each case is one path: broken files, odd formats and rates, odd names, links, folders. Through
`label`, `transcribe`, `embed`, `verify` and `evaluate` (for the three kinds of runs) every case
must give either a correct result or exactly one line ``speechattn: error: FILE: reason``; in a
batch the other files go on, and the exit status is honest (0: all done, 1: some files failed;
`verify` of one bad file: 2, a one-line expected error). A file that is read with a warning (a
truncated WAV) gives its warning line ``FILE: ...`` on stderr, and no other file gives one.
`label` also runs in its default format, RTTM, on every case: any file name gives a valid RTTM.

The tiny trained runs come from the shared fixtures (tests/conftest.py, tests/labeling_support.py,
tests/ctc_support.py). The 4-hour case (a sparse WAV, mostly silence) takes minutes through the
five commands on two cores, so it is marked ``slow`` (``make test-slow``); the memory of the
commands on it is measured by benchmarks/inference_memory.py.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

from speechattn.audio import load_audio, resample
from speechattn.cli.main import main
from tests.audio_support import sparse_wav
from tests.ctc_support import tiny_ctc_run
from tests.labeling_support import tiny_label_run

RATE = 16000
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

#: Outcomes: every command gives a result ("ok"), or an error line ("error"); "short" is audio
#: shorter than one feature frame: `label` and `transcribe` give an empty result (no segments,
#: no text), a speaker embedding and the feature-based evaluations (speaker, CTC) have no frame
#: to work with and report the file.
OK, ERROR, SHORT = "ok", "error", "short"


@dataclass
class Case:
    name: str
    make: Callable[[Path, np.ndarray], Path]
    outcome: str
    words: str = ""  # words the error reason must contain
    warning: str = ""  # a warning every command that reads the file prints on stderr, after "FILE: "


def _write(name: str, data: np.ndarray, rate: int = RATE, **kwargs) -> Callable[[Path, np.ndarray], Path]:
    def make(d: Path, src: np.ndarray) -> Path:
        path = d / name
        sf.write(path, data if data is not None else src, rate, **kwargs)
        return path

    return make


def _at_rate(name: str, rate: int, **kwargs) -> Callable[[Path, np.ndarray], Path]:
    def make(d: Path, src: np.ndarray) -> Path:
        import torch

        path = d / name
        sf.write(path, resample(torch.from_numpy(src), RATE, rate).numpy(), rate, **kwargs)
        return path

    return make


def _with(name: str, edit: Callable[[np.ndarray], np.ndarray], **kwargs) -> Callable[[Path, np.ndarray], Path]:
    def make(d: Path, src: np.ndarray) -> Path:
        path = d / name
        sf.write(path, edit(src.copy()), RATE, **kwargs)
        return path

    return make


def _bytes(name: str, data: Callable[[Path, np.ndarray], bytes]) -> Callable[[Path, np.ndarray], Path]:
    def make(d: Path, src: np.ndarray) -> Path:
        path = d / name
        path.write_bytes(data(d, src))
        return path

    return make


def _pcm16(d: Path, src: np.ndarray, fmt: str = "WAV") -> bytes:
    tmp = d / f".src.{fmt.lower()}"
    sf.write(tmp, src, RATE, format=fmt)
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def _png(_: Path, __: np.ndarray) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + b"\x00" * 4 + b"IEND\xaeB`\x82"


def _set(index: int, value: float) -> Callable[[np.ndarray], np.ndarray]:
    def edit(x: np.ndarray) -> np.ndarray:
        x[index] = value
        return x

    return edit


def _folder(d: Path, _: np.ndarray) -> Path:
    path = d / "folder.wav"
    path.mkdir()
    return path


def _dangling(d: Path, _: np.ndarray) -> Path:
    path = d / "dangling.wav"
    path.symlink_to(d / "nowhere" / "gone.wav")
    return path


def _loop(d: Path, _: np.ndarray) -> Path:
    a, b = d / "loop_a.wav", d / "loop_b.wav"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def _unreadable(d: Path, src: np.ndarray) -> Path:
    path = d / "unreadable.wav"
    sf.write(path, src, RATE)
    path.chmod(0)
    return path


CASES = [
    # ----- broken files
    Case("empty", _bytes("empty.wav", lambda d, s: b""), ERROR, "empty file (0 bytes)"),
    Case("header_only", _bytes("header_only.wav", lambda d, s: _pcm16(d, s)[:44]), ERROR, "empty audio"),
    Case("truncated_wav", _bytes("truncated.wav", lambda d, s: _pcm16(d, s)[: 44 + s.size]), OK,  # half the data
         warning="truncated: the header declares 1.50 s, the file holds 0.75 s"),
    Case("truncated_flac", _bytes("truncated.flac", lambda d, s: (lambda b: b[: len(b) // 2])(_pcm16(d, s, "FLAC"))),
         ERROR, "corrupt audio data"),
    Case("text_wav", _bytes("notes.wav", lambda d, s: b"this is not audio\nat all\n"), ERROR, "not a readable audio file"),
    Case("png_wav", _bytes("picture.wav", _png), ERROR, "not a readable audio file"),
    Case("random_wav", _bytes("random.wav", lambda d, s: np.random.default_rng(1).bytes(6000)), ERROR,
         "not a readable audio file"),
    Case("random_flac", _bytes("random.flac", lambda d, s: np.random.default_rng(2).bytes(6000)), ERROR,
         "not a readable audio file"),
    Case("zero_samples", _write("zero_samples.wav", np.zeros(0, np.float32)), ERROR, "empty audio (0 samples)"),
    Case("one_sample", _write("one_sample.wav", np.full(1, 0.1, np.float32)), SHORT),
    Case("20ms", _with("twenty_ms.wav", lambda x: x[: RATE // 50]), SHORT),
    Case("nan", _with("nan.wav", _set(1000, np.nan), subtype="FLOAT"), ERROR, "NaN or infinite"),
    Case("inf", _with("inf.wav", _set(-1, -np.inf), subtype="DOUBLE"), ERROR, "NaN or infinite"),
    Case("bad_rate", _write("fast.wav", np.zeros(100, np.float32), rate=4_000_000, subtype="FLOAT"), ERROR,
         "unsupported sample rate"),
    # ----- sample formats, channels
    Case("pcm_u8", _with("pcm_u8.wav", lambda x: x, subtype="PCM_U8"), OK),
    Case("pcm_s8_flac", _with("pcm_s8.flac", lambda x: x, subtype="PCM_S8"), OK),
    Case("pcm_16", _with("pcm_16.wav", lambda x: x, subtype="PCM_16"), OK),
    Case("pcm_24", _with("pcm_24.wav", lambda x: x, subtype="PCM_24"), OK),
    Case("pcm_32", _with("pcm_32.wav", lambda x: x, subtype="PCM_32"), OK),
    Case("float", _with("float.wav", lambda x: x, subtype="FLOAT"), OK),
    Case("double", _with("double.wav", lambda x: x, subtype="DOUBLE"), OK),
    Case("3_channels", _with("three_channels.wav", lambda x: np.stack([x, 0.5 * x, -x], axis=1)), OK),
    Case("ogg", _with("vorbis.ogg", lambda x: x, format="OGG", subtype="VORBIS"), OK),
    Case("wav_named_flac", _bytes("wav_inside.flac", lambda d, s: _pcm16(d, s)), OK),
    Case("silence", _with("silence.wav", lambda x: np.zeros_like(x)), OK),
    Case("clipped", _with("clipped.wav", lambda x: np.sign(x).astype(np.float32)), OK),
    # ----- sample rates
    Case("8k", _at_rate("rate_8000.wav", 8000), OK),
    Case("7999", _at_rate("rate_7999.wav", 7999), OK),
    Case("44k1", _at_rate("rate_44100.flac", 44100), OK),
    Case("44101", _at_rate("rate_44101.wav", 44101), OK),
    Case("96k", _at_rate("rate_96000.flac", 96000), OK),
    Case("192k", _at_rate("rate_192000.wav", 192000, subtype="FLOAT"), OK),
    # ----- paths
    Case("folder_named_wav", _folder, ERROR, ""),
    Case("dangling_symlink", _dangling, ERROR, "broken symbolic link"),
    Case("symlink_loop", _loop, ERROR, ""),
    Case("unreadable", _unreadable, ERROR, "ermission denied"),
    Case("unicode_name", _with("señal_日本語_ünï.wav", lambda x: x), OK),
    Case("space_name", _with("with some spaces.flac", lambda x: x), OK),
    Case("blank_name_wav", _with("meeting 2024.wav", lambda x: x), OK),  # RTTM id meeting_2024
    Case("tab_name", _with("tab\tand  blanks.wav", lambda x: x), OK),  # RTTM id tab_and__blanks
]
NAMES = [c.name for c in CASES]
BY_NAME = {c.name: c for c in CASES}


def _skip_unusable(case: Case) -> None:
    if case.name == "unreadable" and AS_ROOT:
        pytest.skip("running as root: chmod 000 does not stop root from reading (see test_unreadable_file_simulated)")


def _run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _error_lines(res: Result, path: Path | str) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith(f"speechattn: error: {path}: ")]


def _all_error_lines(res: Result) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("speechattn: error:")]


def _check_warnings(res: Result, path: Path, case: Case, ok: bool) -> None:
    """The case's warning about ``path`` (``FILE: ...``, from speechattn.audio), once for each
    time the command read it; no audio warning about a file without one."""
    lines = [line for line in res.stderr.splitlines() if line.startswith(f"{path}: ")]
    if ok and case.warning:
        assert lines and set(lines) == {f"{path}: {case.warning}"}, res.stderr
    else:
        assert lines == [], res.stderr


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def source(speechocean_dir) -> tuple[np.ndarray, str, Path]:
    """1.5 s of real speech at 16 kHz, its utterance's transcript and the file."""
    utt, rel = (speechocean_dir / "dev" / "wav.scp").read_text().splitlines()[0].split()
    text = next(line.split(maxsplit=1)[1] for line in (speechocean_dir / "dev" / "text").read_text().splitlines()
                if line.split()[0] == utt)
    wave, _ = load_audio(speechocean_dir / rel, RATE)
    x = wave.numpy()[: int(1.5 * RATE)]
    return (0.5 * x / max(1e-6, float(np.abs(x).max()))).astype(np.float32), text, speechocean_dir / rel


@pytest.fixture(scope="module")
def cases(tmp_path_factory, source) -> dict[str, Path]:
    src = source[0]
    d = tmp_path_factory.mktemp("bad input")  # a space in every path, too
    paths = {c.name: c.make(d, src) for c in CASES}
    yield paths
    paths["unreadable"].chmod(0o644)


@pytest.fixture(scope="module")
def good(fsdd_dir, source) -> dict[str, Path]:
    rec = fsdd_dir / "recordings"
    return {"a": rec / "0_jackson_0.wav", "b": rec / "1_jackson_1.wav", "c": rec / "0_nicolas_0.wav",
            "d": rec / "1_nicolas_1.wav", "speech": source[2]}


@pytest.fixture(scope="module")
def speaker_run(tiny_run) -> Path:
    return tiny_run[0]


@pytest.fixture(scope="module")
def label_run(tmp_path_factory, speechocean_dir) -> Path:
    return tiny_label_run(tmp_path_factory, speechocean_dir)[0]


@pytest.fixture(scope="module")
def ctc_run(tmp_path_factory, speechocean_dir) -> Path:
    return tiny_ctc_run(tmp_path_factory)[0]


def _usable(names: list[str]) -> list[str]:
    return [n for n in names if not (n == "unreadable" and AS_ROOT)]


@pytest.fixture(scope="module")
def batches(cases, good, speaker_run, label_run, ctc_run) -> dict[str, Result]:
    """Each command once on every case plus a good file: the batch must go on past every failure."""
    inputs = [good["speech"]] + [cases[n] for n in _usable(NAMES)]
    return {
        "label": _run("label", label_run, *inputs, "--format", "json"),
        "transcribe": _run("transcribe", ctc_run, *inputs, "--format", "json"),
        "embed": _run("embed", speaker_run, *inputs),
    }


def _records(res: Result, key: str = "file") -> dict[str, dict]:
    return {r[key]: r for r in (json.loads(line) for line in res.stdout.splitlines() if line.startswith("{"))}


def _expect_ok(command: str, outcome: str) -> bool:
    if outcome == SHORT:
        return command in ("label", "transcribe", "evaluate_labels")
    return outcome == OK


def _check_single(res: Result, path: Path, case: Case, ok: bool, records: dict[str, dict]) -> None:
    """A single-file run: exit 0 with the file's result, or exit 1 with exactly one error line."""
    if ok:
        assert res.exit_code == 0, res.output
        assert _all_error_lines(res) == [], res.stderr
        assert str(path) in records
    else:
        assert res.exit_code == 1, res.output
        lines = _all_error_lines(res)
        assert len(lines) == 1 and lines == _error_lines(res, path), res.stderr
        assert case.words in lines[0], lines[0]
        assert records == {}
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    _check_warnings(res, path, case, ok)


def _check_batch(res: Result, path: Path, case: Case, ok: bool, records: dict[str, dict]) -> None:
    assert res.exit_code == 1  # some cases fail, the rest are done
    lines = _error_lines(res, path)
    if ok:
        assert lines == [] and str(path) in records, res.stderr
    else:
        assert len(lines) == 1 and case.words in lines[0] and str(path) not in records, res.stderr
    _check_warnings(res, path, case, ok)


# ----------------------------------------------------------------------------- label / transcribe / embed


@pytest.mark.parametrize("name", NAMES)
def test_label(name, cases, label_run, batches):
    case = BY_NAME[name]
    _skip_unusable(case)
    path = cases[name]
    ok = _expect_ok("label", case.outcome)
    res = _run("label", label_run, path, "--format", "json")
    records = _records(res)
    _check_single(res, path, case, ok, records)
    if ok:
        r = records[str(path)]
        assert r["classes"] == ["speech"] and r["duration"] >= 0
        assert all(0 <= s["start"] < s["end"] <= r["duration"] + 1e-3 for s in r["segments"])
        if case.outcome == SHORT:
            assert r["duration"] < 0.03 and r["segments"] == []
        else:  # a truncated file: what it holds
            assert r["duration"] == pytest.approx(0.75 if name == "truncated_wav" else 1.5, abs=0.01)
    _check_batch(batches["label"], path, case, ok, _records(batches["label"]))


@pytest.fixture(scope="module")
def rttm_batch(cases, good, label_run, tmp_path_factory) -> tuple[Result, Path, dict[str, str]]:
    """`label` in its default format, RTTM, one file per input in a folder: (result, folder, path
    -> output name) for every case plus a good file."""
    from speechattn.cli.batch import unique_name

    out = tmp_path_factory.mktemp("rttm")
    inputs = [good["speech"]] + [cases[n] for n in _usable(NAMES)]
    used: set[str] = set()
    names = {str(p): unique_name(p.stem, used) for p in inputs}  # the command's own naming
    return _run("label", label_run, *inputs, "-o", out), out, names


@pytest.mark.parametrize("name", NAMES)
def test_label_rttm_whatever_the_name(name, cases, rttm_batch, batches):
    """The default output format takes any file name: a valid RTTM (ten fields, the file id
    without blanks) with the segments of the JSON output."""
    from speechattn.data.labels import rttm_file_id

    case = BY_NAME[name]
    _skip_unusable(case)
    res, out, names = rttm_batch
    path = cases[name]
    ok = _expect_ok("label", case.outcome)
    rttm = out / f"{names[str(path)]}.rttm"
    lines = _error_lines(res, path)
    if ok:
        assert lines == [] and rttm.is_file(), res.stderr
        rows = [line.split(" ") for line in rttm.read_text().splitlines()]
        file_id = rttm_file_id(names[str(path)])
        assert all(len(r) == 10 and r[0] == "SPEAKER" and r[1] == file_id for r in rows), rows
        assert not any(c.isspace() for c in file_id)
        segments = _records(batches["label"])[str(path)]["segments"]
        assert [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows] == [
            (pytest.approx(s["start"], abs=1e-6), pytest.approx(s["end"], abs=2e-3), s["label"]) for s in segments]
    else:
        assert len(lines) == 1 and case.words in lines[0] and not rttm.exists(), res.stderr
    _check_warnings(res, path, case, ok)


def test_rttm_batch_counts(rttm_batch, cases):
    res, _, _ = rttm_batch
    usable = _usable(NAMES)
    done = 1 + sum(_expect_ok("label", BY_NAME[n].outcome) for n in usable)
    assert f"{done} files done, {len(usable) + 1 - done} failed" in res.stderr, res.stderr[-500:]
    assert "cannot write the result" not in res.stderr


@pytest.mark.parametrize("name", NAMES)
def test_transcribe(name, cases, ctc_run, batches):
    case = BY_NAME[name]
    _skip_unusable(case)
    path = cases[name]
    ok = _expect_ok("transcribe", case.outcome)
    res = _run("transcribe", ctc_run, path, "--format", "json")
    records = _records(res)
    _check_single(res, path, case, ok, records)
    if ok:
        r = records[str(path)]
        assert isinstance(r["text"], str) and math.isfinite(r["score"])
        if case.outcome == SHORT:
            assert r["text"] == "" and r["tokens"] == []
    _check_batch(batches["transcribe"], path, case, ok, _records(batches["transcribe"]))


@pytest.mark.parametrize("name", NAMES)
def test_embed(name, cases, speaker_run, batches):
    case = BY_NAME[name]
    _skip_unusable(case)
    path = cases[name]
    ok = _expect_ok("embed", case.outcome)
    if case.outcome == SHORT:
        case = Case(case.name, case.make, case.outcome, "shorter than one frame")
    res = _run("embed", speaker_run, path)
    records = _records(res)
    _check_single(res, path, case, ok, records)
    if ok:
        emb = np.array(records[str(path)]["embedding"])
        assert emb.shape == (16,) and np.isfinite(emb).all()
    _check_batch(batches["embed"], path, case, ok, _records(batches["embed"]))


def test_batches_keep_the_good_file_and_count(batches, good):
    ok_cases = [n for n in _usable(NAMES) if _expect_ok("label", BY_NAME[n].outcome)]
    for command, res in batches.items():
        usable = _usable(NAMES)
        done = 1 + sum(_expect_ok(command, BY_NAME[n].outcome) for n in usable)
        assert f"{done} files done, {len(usable) + 1 - done} failed" in res.stderr, (command, res.stderr[-500:])
        assert str(good["speech"]) in _records(res)
    assert len(ok_cases) >= 20


# ----------------------------------------------------------------------------- verify


@pytest.mark.parametrize("name", NAMES)
def test_verify(name, cases, good, speaker_run):
    case = BY_NAME[name]
    _skip_unusable(case)
    path = cases[name]
    res = _run("verify", speaker_run, path, good["a"])
    if _expect_ok("verify", case.outcome):
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert -1.0 <= out["score"] <= 1.0 and out["first"] == str(path)
        assert _all_error_lines(res) == []
        _check_warnings(res, path, case, True)
    else:
        assert res.exit_code == 2, res.output  # one file of two: an expected error, one line
        lines = _all_error_lines(res)
        assert len(lines) == 1 and str(path) in lines[0], res.stderr
        assert res.stdout == ""
        if case.outcome == SHORT:
            assert "shorter than one frame" in lines[0]
        else:
            assert case.words in lines[0]


# ----------------------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory, cases, good, source, speaker_run, label_run, ctc_run) -> dict[str, Result]:
    """evaluate of each kind of run on a manifest of good files plus every case."""
    d = tmp_path_factory.mktemp("evaluate")
    names = _usable(NAMES)
    text = source[1]
    speaker_rows = [{"id": f"good_{k}", "path": str(good[k]), "speaker": good[k].name.split("_")[1]} for k in "abcd"]
    speaker_rows += [{"id": f"case_{n}", "path": str(cases[n]), "speaker": f"case_{n}"} for n in names]
    (d / "speaker.jsonl").write_text("".join(json.dumps(r) + "\n" for r in speaker_rows))
    ctc_rows = [{"id": "good", "path": str(good["speech"]), "speaker": "s", "text": text}]
    ctc_rows += [{"id": f"case_{n}", "path": str(cases[n]), "speaker": "s", "text": text} for n in names]
    (d / "ctc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ctc_rows))
    labels = d / "labels"
    labels.mkdir()
    (labels / "cases.jsonl").write_text("".join(json.dumps({"id": r["id"], "path": r["path"]}) + "\n" for r in ctc_rows))
    (labels / "cases.rttm").write_text("".join(
        f"SPEAKER {r['id']} 1 0.200 1.000 <NA> <NA> speech <NA> <NA>\n" for r in ctc_rows))
    return {
        "evaluate_speaker": _run("evaluate", speaker_run, "--data", d / "speaker.jsonl"),
        "evaluate_ctc": _run("evaluate", ctc_run, "--data", d / "ctc.jsonl"),
        "evaluate_labels": _run("evaluate", label_run, "--data", labels / "cases.jsonl"),
    }


@pytest.mark.parametrize("kind", ["evaluate_speaker", "evaluate_ctc", "evaluate_labels"])
@pytest.mark.parametrize("name", NAMES)
def test_evaluate(name, kind, cases, evaluations):
    case = BY_NAME[name]
    _skip_unusable(case)
    res = evaluations[kind]
    path = cases[name]
    assert res.exit_code == 1, res.output  # the metrics, and some files could not be used
    metrics = json.loads(res.stdout)
    lines = _error_lines(res, path)
    if _expect_ok(kind, case.outcome):
        assert lines == [], res.stderr
    else:
        assert len(lines) == 1, res.stderr
        if case.outcome != SHORT:
            assert case.words in lines[0]
    _check_warnings(res, path, case, _expect_ok(kind, case.outcome))
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))


def test_evaluate_counts(evaluations):
    names = _usable(NAMES)
    for kind, res in evaluations.items():
        metrics = json.loads(res.stdout)
        failed = sum(not _expect_ok(kind, BY_NAME[n].outcome) for n in names)
        assert len(_all_error_lines(res)) == failed, (kind, res.stderr)
        assert f"{failed} audio files could not be used" in res.stderr
        used = metrics.get("utterances", metrics.get("files"))
        assert used == (4 if kind == "evaluate_speaker" else 1) + len(names) - failed, (kind, metrics)


# ----------------------------------------------------------------------------- simulated, and slow


def test_unreadable_file_simulated(tmp_path, monkeypatch, source, label_run):
    """Without root: chmod 000 stops reading. Simulated for root (os.access says no)."""
    import speechattn.audio.io as io

    path = tmp_path / "locked.wav"
    sf.write(path, source[0], RATE)
    real = os.access
    monkeypatch.setattr(io.os, "access", lambda p, mode, *a, **k: False if Path(p) == path else real(p, mode, *a, **k))
    res = _run("label", label_run, path, source[2])
    assert res.exit_code == 1
    assert _all_error_lines(res) == [f"speechattn: error: {path}: permission denied"]
    assert "1 file done, 1 failed" in res.stderr


def test_memory_error_on_one_file_is_that_files_error(cases, good, label_run, speaker_run, monkeypatch):
    """A failed allocation (torch's RuntimeError, or MemoryError) on one file is its one-line
    error; the batch goes on."""
    import speechattn.inference as inference
    import speechattn.inference as labeler

    bad = cases["pcm_16"]
    real_label, real_embed = labeler.Labeler.label_file, inference.SpeakerRecognizer.embed_file

    def label_file(self, path, **kwargs):
        if Path(path) == bad:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 2822400000 bytes. Error code 12 (Cannot allocate memory)")
        return real_label(self, path, **kwargs)

    def embed_file(self, path, *args, **kwargs):
        if Path(path) == bad:
            raise MemoryError()
        return real_embed(self, path, *args, **kwargs)

    monkeypatch.setattr(labeler.Labeler, "label_file", label_file)
    monkeypatch.setattr(inference.SpeakerRecognizer, "embed_file", embed_file)
    res = _run("label", label_run, good["speech"], bad, cases["float"])
    assert res.exit_code == 1
    assert _all_error_lines(res) == [f"speechattn: error: {bad}: out of memory (tried to allocate 2.8 GB)"]
    assert "2 files done, 1 failed" in res.stderr
    res = _run("embed", speaker_run, good["a"], bad, good["b"])
    assert res.exit_code == 1
    assert _all_error_lines(res) == [f"speechattn: error: {bad}: out of memory"]
    assert len(_records(res)) == 2
    res = _run("verify", speaker_run, bad, good["b"])
    assert res.exit_code == 2 and _all_error_lines(res) == [f"speechattn: error: {bad}: out of memory"]


@pytest.mark.slow  # a 4-hour file through five commands takes minutes: make test-slow
def test_four_hour_file(tmp_path, source, good, speaker_run, label_run, ctc_run):
    path = sparse_wav(tmp_path / "four hours.wav", 4 * 3600, 8000, speech=source[0][::2], every=600.0)
    res = _run("label", label_run, path, "--format", "json")
    assert res.exit_code == 0, res.output
    assert _records(res)[str(path)]["duration"] == pytest.approx(4 * 3600, abs=0.01)
    res = _run("transcribe", ctc_run, path, "--format", "json")
    assert res.exit_code == 0, res.output
    res = _run("embed", speaker_run, path)
    assert res.exit_code == 0, res.output
    assert np.isfinite(_records(res)[str(path)]["embedding"]).all()
    res = _run("verify", speaker_run, path, good["a"])
    assert res.exit_code == 0, res.output
