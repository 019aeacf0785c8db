"""Atomic output files (a failure mid-write leaves no partial file) and ``--threads`` on every command."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import speechattn.tasks
from speechattn.cli.main import main
from speechattn.utils.files import atomic_write, atomic_write_text
from tests.ctc_support import tiny_ctc_run
from tests.labeling_support import tiny_label_run


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _errors(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("speechattn: error:")]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def label_run(tmp_path_factory, speechocean_dir):
    run_dir, _, folders = tiny_label_run(tmp_path_factory, speechocean_dir)
    return run_dir, sorted(folders["dev"].glob("*.ogg"))[:2]


@pytest.fixture(scope="module")
def ctc_run(tmp_path_factory, speechocean_dir):
    return tiny_ctc_run(tmp_path_factory)[0]


@pytest.fixture
def full_disk(monkeypatch):
    """Every low-level writer used for outputs writes a few bytes, then fails (ENOSPC)."""
    from matplotlib.figure import Figure
    from praatio.data_classes.textgrid import Textgrid

    def fail(target) -> None:
        with open(target, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: fail(self))
    monkeypatch.setattr(np, "save", lambda file, *a, **k: fail(file.name if hasattr(file, "name") else file))
    monkeypatch.setattr(Figure, "savefig", lambda self, fname, *a, **k: fail(fname))
    monkeypatch.setattr(Textgrid, "save", lambda self, fn, *a, **k: fail(fn))


# ----------------------------------------------------------------------------- atomic outputs


def test_write_output_leaves_the_old_file_or_nothing(tmp_path, full_disk):
    old = tmp_path / "kept.txt"
    old.write_bytes(b"previous result\n")  # write_bytes is not patched
    for target in (old, tmp_path / "new" / "fresh.txt"):
        with pytest.raises(OSError, match="No space left"):
            atomic_write_text(target, "a result that never fully lands\n")
    assert old.read_bytes() == b"previous result\n"
    assert _listing(tmp_path) == ["kept.txt", "new"] and _listing(tmp_path / "new") == []


def test_write_output_gives_normal_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "x.bin", lambda tmp: Path(tmp).write_bytes(b"x"))
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
    assert _listing(tmp_path) == ["x.bin"]


@pytest.mark.parametrize(("fmt", "plot"), [("rttm", False), ("json", False), ("tsv", False), ("textgrid", True)])
def test_label_outputs_are_atomic(label_run, tmp_path, fmt, plot, full_disk):
    run_dir, (a, b) = label_run
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{a.stem}.old").write_bytes(b"unrelated\n")
    res = _run("label", run_dir, a, b, "-o", out, "--format", fmt, *(["--plot"] if plot else []))
    assert res.exit_code == 1, res.output
    assert _errors(res) == [f"speechattn: error: {p}: cannot write the result: No space left on device" for p in (a, b)]
    assert "0 files done, 2 failed" in res.stderr
    assert _listing(out) == [f"{a.stem}.old"]  # no partial result, no temporary file


def test_transcribe_outputs_are_atomic(ctc_run, label_run, tmp_path, full_disk):
    _, (a, b) = label_run
    out = tmp_path / "out"
    res = _run("transcribe", ctc_run, a, b, "-o", out, "--format", "json")
    assert res.exit_code == 1 and len(_errors(res)) == 2, res.output
    assert _listing(out) == []


@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_embed_output_is_atomic(tiny_run, fsdd_dir, tmp_path, full_disk, suffix):
    out = tmp_path / f"emb{suffix}"
    res = _run("embed", tiny_run[0], fsdd_dir / "recordings" / "0_jackson_0.wav", "-o", out)
    assert res.exit_code == 2 and _errors(res) == ["speechattn: error: No space left on device"], res.output
    assert _listing(tmp_path) == []


def test_evaluate_det_plot_is_atomic(tiny_run, tmp_path, full_disk):
    det = tmp_path / "det.png"
    res = _run("evaluate", tiny_run[0], "--data", "fsdd:test", "--det", det)
    assert res.exit_code == 2 and _errors(res) == ["speechattn: error: No space left on device"], res.output
    assert _listing(tmp_path) == []


def test_outputs_written_without_failure(label_run, tiny_run, fsdd_dir, tmp_path):
    run_dir, (a, _) = label_run
    res = _run("label", run_dir, a, "-o", tmp_path / "labels", "--format", "textgrid", "--plot")
    assert res.exit_code == 0, res.output
    assert _listing(tmp_path / "labels") == [f"{a.stem}.TextGrid", f"{a.stem}.png"]
    out = tmp_path / "emb.npy"
    wav = fsdd_dir / "recordings" / "0_jackson_0.wav"
    assert _run("embed", tiny_run[0], wav, "-o", out).exit_code == 0
    assert np.load(out).shape == (1, 16) and out.with_suffix(".txt").read_text() == f"{wav}\n"
    assert _listing(tmp_path) == ["emb.npy", "emb.txt", "labels"]


# ----------------------------------------------------------------------------- --threads


@pytest.fixture
def thread_calls(monkeypatch):
    calls: list[int] = []
    real = torch.set_num_threads
    before = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n) or real(n))
    yield calls
    real(before)


@pytest.mark.parametrize("command", ["label", "transcribe", "embed", "verify", "identify", "evaluate"])
def test_threads_option_on_every_inference_command(command, tmp_path, thread_calls):
    args = {"verify": ["a.wav", "b.wav"], "identify": ["--enroll", tmp_path, "a.wav"],
            "evaluate": ["--data", "x"]}.get(command, ["a.wav"])
    res = _run(command, tmp_path, *args, "--threads", "3")  # tmp_path: not a run folder
    assert res.exit_code == 2 and "config.yaml" in res.stderr, res.output
    assert thread_calls == [3]
    assert torch.get_num_threads() == 3
    assert "--threads N" in _run(command, "--help").stdout
    bad = _run(command, tmp_path, *args, "--threads", "0")
    assert bad.exit_code == 2 and "--threads" in bad.stderr


def test_threads_option_of_train_overrides_train_threads(tmp_path, monkeypatch, thread_calls):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: speaker\n")
    seen = {}

    def fake_train(path, overrides, **kwargs):
        seen["overrides"] = overrides
        return {"run_dir": "x"}

    monkeypatch.setattr(speechattn.tasks, "train_recipe", fake_train)
    res = _run("train", recipe, "--set", "train.lr=0.1", "--threads", "2")
    assert res.exit_code == 0, res.output
    assert seen["overrides"] == ["train.lr=0.1", "train.threads=2"] and thread_calls == [2]
    assert json.loads(res.stdout) == {"run_dir": "x"}


def test_threads_option_runs_a_real_command(label_run, thread_calls):
    run_dir, (a, _) = label_run
    res = _run("label", run_dir, a, "--threads", "1", "--format", "json")
    assert res.exit_code == 0, res.output
    assert thread_calls == [1] and json.loads(res.stdout)["file"] == str(a)
