"""`speechattn label` and `speechattn evaluate` for frame-labeling runs, through the real CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from speechattn.cli.main import main
from speechattn.data.labels import read_rttm, read_textgrid
from tests.labeling_support import tiny_label_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, speechocean_dir):
    return tiny_label_run(tmp_path_factory, speechocean_dir)


@pytest.fixture(scope="module")
def inputs(run, tmp_path_factory):
    _, _, folders = run
    good = sorted(folders["dev"].glob("*.ogg"))[:2]
    bad = tmp_path_factory.mktemp("bad") / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return good, bad


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_label_rttm_to_stdout_reports_bad_files_and_goes_on(run, inputs):
    run_dir, _, _ = run
    (a, b), bad = inputs
    res = _run("label", run_dir, a, bad, b, bad.parent / "missing.wav")
    assert res.exit_code == 1
    ids = {line.split()[1] for line in res.stdout.splitlines()}
    assert ids <= {a.stem, b.stem} and all(line.startswith("SPEAKER ") for line in res.stdout.splitlines())
    assert "speechattn: error: " in res.output and "broken.wav" in res.output and "missing.wav" in res.output
    assert "2 files done, 2 failed" in res.output


def test_label_json_and_tsv_agree(run, inputs):
    run_dir, _, _ = run
    (a, b), _ = inputs
    res = _run("label", run_dir, a, b, "--format", "json", "--progress")  # the bar goes to stderr
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(a), str(b)]
    for r in records:
        assert r["classes"] == ["speech"] and r["duration"] > 1.0
        assert all(0 <= s["start"] < s["end"] <= r["duration"] + 1e-3 for s in r["segments"])
    res = _run("label", run_dir, a, b, "--format", "tsv")
    lines = res.stdout.splitlines()
    assert lines[0] == "file\tstart\tend\tlabel"
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == sum(len(r["segments"]) for r in records)
    assert [(f, float(s), float(e)) for f, s, e, _ in rows] == [
        (r["file"], s["start"], s["end"]) for r in records for s in r["segments"]]


def test_label_files_textgrid_rttm_and_plot(run, inputs, tmp_path):
    run_dir, _, _ = run
    (a, b), bad = inputs
    res = _run("label", run_dir, a, b, bad, "-o", tmp_path, "--format", "textgrid", "--plot")
    assert res.exit_code == 1 and "broken.wav" in res.output
    out = _run("label", run_dir, a, b, "--format", "json")
    records = {json.loads(line)["file"]: json.loads(line) for line in out.stdout.splitlines()}
    for path in (a, b):
        segs = read_textgrid(tmp_path / f"{path.stem}.TextGrid", tier="speech")
        expected = [(s["start"], s["end"]) for s in records[str(path)]["segments"]]
        assert [(round(s.start, 3), round(s.end, 3)) for s in segs] == expected
        png = tmp_path / f"{path.stem}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    assert not (tmp_path / "broken.TextGrid").exists()
    res = _run("label", run_dir, a, "-o", tmp_path / "rttm")
    assert res.exit_code == 0
    segs = read_rttm(tmp_path / "rttm" / f"{a.stem}.rttm").get(a.stem, [])
    assert [(s.start, s.end, s.label) for s in segs] == [
        (s["start"], s["end"], s["label"]) for s in records[str(a)]["segments"]]


def test_file_names_with_blanks_get_valid_rttm_ids(run, inputs, tmp_path):
    """`label RUN "meeting 2024.wav"` in the default format: the RTTM file id is meeting_2024
    (each whitespace character as _), JSON keeps the path, and evaluate reads the RTTM back."""
    from speechattn.audio import load_audio, save_audio

    run_dir, _, _ = run
    (a, _), _ = inputs
    wave, rate = load_audio(a)
    folder = tmp_path / "odd names"
    folder.mkdir()
    meeting, tabbed = folder / "meeting 2024.wav", folder / "tab\tand  two.wav"
    for path in (meeting, tabbed):
        save_audio(path, wave, rate)
    res = _run("label", run_dir, meeting, tabbed)
    assert res.exit_code == 0, res.output
    assert "2 files done" in res.stderr and "error" not in res.stderr
    rows = [line.split(" ") for line in res.stdout.splitlines()]
    assert rows and all(len(r) == 10 and r[0] == "SPEAKER" for r in rows)
    assert {r[1] for r in rows} == {"meeting_2024", "tab_and__two"}
    # -o DIR: the file keeps the name, the id inside is the RTTM one
    res = _run("label", run_dir, meeting, "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    rttm = tmp_path / "out" / "meeting 2024.rttm"
    assert set(read_rttm(rttm)) == {"meeting_2024"}
    res = _run("label", run_dir, meeting, "--format", "json")
    assert json.loads(res.stdout)["file"] == str(meeting)
    # evaluate matches the audio to that RTTM (an RTTM of the folder, by the id of its name)
    data = tmp_path / "data"
    data.mkdir()
    (data / meeting.name).symlink_to(meeting)
    (data / "labels.rttm").write_text(rttm.read_text())
    res = _run("evaluate", run_dir, "--data", data)
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert metrics["files"] == 1 and metrics["f1"] == pytest.approx(1.0)  # the same labels again


def test_label_usage_errors(run, inputs, tmp_path):
    run_dir, _, _ = run
    (a, _), _ = inputs
    res = _run("label", run_dir, a, "--format", "textgrid")
    assert res.exit_code == 2 and "-o DIR" in res.output
    res = _run("label", tmp_path, a)
    assert res.exit_code == 2 and "config.yaml" in res.output and res.output.strip().count("\n") == 0


def test_evaluate_dispatches_on_the_run_task(run):
    run_dir, summary, folders = run
    res = _run("evaluate", run_dir, "--data", folders["dev"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert metrics["files"] == 4 and metrics["f1"] == pytest.approx(summary["dev"]["f1"], abs=0.01)
    res = _run("evaluate", run_dir, "--data", folders["dev"], "--cohort", "x")
    assert res.exit_code == 2 and "speaker runs" in res.output
