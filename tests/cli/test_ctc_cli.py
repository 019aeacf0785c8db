"""`speechattn transcribe` and `speechattn evaluate` for CTC runs, through the real CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from speechattn.cli.main import main
from tests.ctc_support import small_kaldi_dir, tiny_ctc_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, speechocean_dir):
    return tiny_ctc_run(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def inputs(speechocean_dir, tmp_path_factory):
    good = sorted((speechocean_dir / "audio" / "SPEAKER0001").glob("*.ogg"))[:2]
    bad = tmp_path_factory.mktemp("bad") / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return good, bad


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_transcribe_text_reports_bad_files_and_goes_on(run, inputs):
    (a, b), bad = inputs
    res = _run("transcribe", run, a, bad, b, bad.parent / "missing.wav")
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(a), str(b)]
    assert "speechattn: error: " in res.output and "broken.wav" in res.output and "missing.wav" in res.output
    assert "2 files done, 2 failed" in res.output


def test_transcribe_json_and_ctm_carry_the_same_token_times(run, inputs, tmp_path):
    (a, b), _ = inputs
    res = _run("transcribe", run, a, b, "--format", "json", "--progress")
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(a), str(b)]
    for r in records:
        assert [t["token"] for t in r["tokens"]] == r["text"].split()
        assert all(0 <= t["start"] <= t["end"] <= r["duration"] + 1e-3 for t in r["tokens"])
    res = _run("transcribe", run, a, b, "--format", "ctm", "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    for r, path in zip(records, (a, b)):
        rows = [line.split() for line in (tmp_path / "out" / f"{path.stem}.ctm").read_text().splitlines()]
        assert [row[4] for row in rows] == [t["token"] for t in r["tokens"]]
        assert all(row[0] == path.stem and row[1] == "1" for row in rows)
        assert [float(row[2]) for row in rows] == pytest.approx([t["start"] for t in r["tokens"]], abs=1e-3)


def test_transcribe_beam_option_and_text_files(run, inputs, tmp_path):
    (a, _), _ = inputs
    res = _run("transcribe", run, a, "--beam", "4", "-o", tmp_path)
    assert res.exit_code == 0, res.output
    greedy = _run("transcribe", run, a).stdout.split("\t")[1]
    beam_text = (tmp_path / f"{a.stem}.txt").read_text()
    assert beam_text.endswith("\n") and len(beam_text.split()) > 0 or len(greedy.split()) == 0
    assert _run("transcribe", run, a, "--beam", "0").exit_code == 2


def test_evaluate_ctc_run(run, speechocean_dir, tmp_path):
    data = small_kaldi_dir(speechocean_dir, "dev", tmp_path / "dev", 8, {3: "NOTAWORDXYZ"})
    res = _run("evaluate", run, "--data", data)
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert metrics["utterances"] == 7 and metrics["skipped_utterances"] == 1
    assert 0.0 <= metrics["per"]
    res = _run("evaluate", run, "--data", data, "--trials", __file__)
    assert res.exit_code == 2 and "only for speaker runs" in res.output


def test_transcribe_refuses_other_runs(tmp_path):
    (tmp_path / "config.yaml").write_text("task: speaker\n")
    res = _run("transcribe", tmp_path, __file__)
    assert res.exit_code == 2 and "not a CTC transcription model" in res.output
