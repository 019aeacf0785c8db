"""BatchReport: per-file outcomes, failures printed as they happen, the exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechattn.cli.batch import BatchReport


def test_batch_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = BatchReport()
    assert report.exit_code == 0 and report.summary() == "0 files done, 0 failed"
    report.ok(tmp_path / "a.wav")
    assert report.summary() == "1 file done, 0 failed"
    report.fail(tmp_path / "b.wav", "cannot decode\n  (truncated file)")
    err = capsys.readouterr().err
    assert err == f"speechattn: error: {tmp_path / 'b.wav'}: cannot decode (truncated file)\n"
    report.fail("c.wav", ValueError("c.wav: too short"))
    report.fail("d.wav", RuntimeError())
    report.add_problems([("missing/", "no such file or directory")])
    for i in range(11):
        report.ok(f"{i}.wav")
    assert report.summary() == "12 files done, 4 failed"
    assert report.exit_code == 1
    assert (report.num_ok, report.num_failed) == (12, 4)
    assert report.failed[1:] == [
        ("c.wav", "too short"),  # an error that names its file is not prefixed twice
        ("d.wav", "RuntimeError"),
        ("missing/", "no such file or directory"),
    ]
    assert capsys.readouterr().err.splitlines() == [
        "speechattn: error: c.wav: too short",
        "speechattn: error: d.wav: RuntimeError",
        "speechattn: error: missing/: no such file or directory",
    ]


def test_batch_report_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    report = BatchReport(echo=False)
    report.fail("x.wav", "bad")
    assert capsys.readouterr().err == ""
    assert report.exit_code == 1
