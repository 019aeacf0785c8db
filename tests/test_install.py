"""A plain ``pip install speechattn`` brings only what inference needs.

pyproject.toml's base dependencies hold no training-only package (tensorboard, webdataset,
matplotlib: the ``train`` extra; ``dev`` has every extra). The inference commands are run as a
base install would run them: in a subprocess whose ``sitecustomize`` (first on PYTHONPATH) puts
a meta-path hook in front of the import system that makes ``import tensorboard`` /
``matplotlib`` / ``webdataset`` / ``torch.utils.tensorboard`` raise ImportError and records
every attempt. The tiny trained runs of the three tasks come from the shared fixtures
(tests/conftest.py, tests/labeling_support.py, tests/ctc_support.py): each command must succeed
and no blocked module may even be tried. What needs an extra stops with one line naming it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.ctc_support import tiny_ctc_run
from tests.labeling_support import tiny_label_run

REPO = Path(__file__).resolve().parent.parent

#: Training-only packages: none may be a base dependency, nor imported on the inference path.
TRAIN_ONLY = ("tensorboard", "matplotlib", "webdataset")
BLOCKED = (*TRAIN_ONLY, "torch.utils.tensorboard")

#: Installed first thing in the subprocess (as sitecustomize): blocked imports fail, and are logged.
SITECUSTOMIZE = f"""
import os, sys

BLOCKED = {BLOCKED!r}
LOG = os.environ["SPEECHATTN_BLOCK_LOG"]


class _Block:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            with open(LOG, "a") as f:
                f.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in a base install)", name=name)
        return None

    def find_module(self, name, path=None):  # pragma: no cover - old import protocol
        return None


sys.meta_path.insert(0, _Block())
"""


def _base_install_env(tmp: Path) -> tuple[dict[str, str], Path]:
    """Environment of a subprocess that behaves like a base install; and the file logging attempts."""
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp / "blocked.log"
    log.write_text("")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["SPEECHATTN_BLOCK_LOG"] = str(log)
    env.pop("PYTHONNOUSERSITE", None)
    return env, log


def run_base(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``python -m speechattn.cli.main ARGS`` as a base install: (process, blocked imports tried)."""
    env, log = _base_install_env(tmp)
    proc = subprocess.run([sys.executable, "-m", "speechattn.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp)
    return proc, log.read_text().split()


# ----------------------------------------------------------------------------- pyproject.toml


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    import re

    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_base_dependencies_hold_no_training_package():
    project = _project()
    base = _names(project["dependencies"])
    assert not base & set(TRAIN_ONLY), base & set(TRAIN_ONLY)
    assert {"torch", "torchaudio", "soundfile", "numpy", "click", "pyyaml", "safetensors", "tqdm"} <= base
    assert set(TRAIN_ONLY) <= _names(project["optional-dependencies"]["train"])


def test_dev_extra_has_every_other_extra_and_the_test_tools():
    extras = _project()["optional-dependencies"]
    dev = _names(extras["dev"])
    for name, requirements in extras.items():
        assert _names(requirements) <= dev, f"[dev] lacks what [{name}] has: {_names(requirements) - dev}"
    assert {"pytest", "librosa"} <= dev


# ----------------------------------------------------------------------------- the inference path


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> dict[str, Path]:
    """Two generated 16 kHz WAVs: 2 s of voiced harmonics with pauses, at two pitches."""
    d = tmp_path_factory.mktemp("base install")
    rate = 16000
    t = np.arange(2 * rate) / rate
    gen = np.random.default_rng(0)
    out = {}
    for name, f0 in (("x", 140.0), ("y", 210.0)):
        voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
        envelope = (np.sin(2 * np.pi * 1.5 * t) > -0.3).astype(float)
        wave = 0.3 * voiced / np.abs(voiced).max() * envelope + 0.003 * gen.standard_normal(t.size)
        out[name] = d / f"{name}.wav"
        sf.write(out[name], wave.astype(np.float32), rate)
    return out


@pytest.fixture(scope="module")
def speaker_run(tiny_run) -> Path:
    return tiny_run[0]


@pytest.fixture(scope="module")
def label_run(tmp_path_factory, speechocean_dir) -> tuple[Path, dict[str, Path]]:
    run_dir, _, folders = tiny_label_run(tmp_path_factory, speechocean_dir)
    return run_dir, folders


@pytest.fixture(scope="module")
def ctc_run(tmp_path_factory, speechocean_dir) -> Path:
    return tiny_ctc_run(tmp_path_factory)[0]


def _ok(proc: subprocess.CompletedProcess[str], tried: list[str]) -> None:
    assert proc.returncode == 0, proc.stderr
    assert tried == [], f"the inference path tried to import {sorted(set(tried))}"


def test_the_blocker_blocks(tmp_path):
    """The harness itself: in the subprocess each blocked module fails to import, and is logged."""
    env, log = _base_install_env(tmp_path)
    code = ("import importlib\n"
            f"for name in {BLOCKED!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except ImportError:\n        print('blocked', name)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         timeout=300)
    assert out.stdout.split("\n")[:-1] == [f"blocked {name}" for name in BLOCKED]
    assert set(log.read_text().split()) >= set(BLOCKED)


def test_label_as_a_base_install(tmp_path, label_run, wavs):
    run_dir, folders = label_run
    proc, tried = run_base(tmp_path, "label", str(run_dir), str(wavs["x"]), "--format", "json", "--no-progress")
    _ok(proc, tried)
    record = json.loads(proc.stdout)
    assert record["file"] == str(wavs["x"]) and record["classes"] == ["speech"]
    # TextGrid output is inference too: praatio is a base dependency
    proc, tried = run_base(tmp_path, "label", str(run_dir), str(wavs["x"]), "-o", str(tmp_path / "out"),
                           "--format", "textgrid", "--no-progress")
    _ok(proc, tried)
    assert (tmp_path / "out" / "x.TextGrid").read_text().startswith('File type = "ooTextFile"')


def test_evaluate_a_labeler_as_a_base_install(tmp_path, label_run):
    run_dir, folders = label_run
    proc, tried = run_base(tmp_path, "evaluate", str(run_dir), "--data", str(folders["dev"]))
    _ok(proc, tried)
    metrics = json.loads(proc.stdout)
    assert metrics["files"] == 4 and 0.0 <= metrics["f1"] <= 1.0


def test_transcribe_as_a_base_install(tmp_path, ctc_run, wavs):
    proc, tried = run_base(tmp_path, "transcribe", str(ctc_run), str(wavs["x"]), "--no-progress")
    _ok(proc, tried)
    assert proc.stderr.strip().endswith("1 file done, 0 failed")


def test_embed_and_verify_as_a_base_install(tmp_path, speaker_run, wavs):
    proc, tried = run_base(tmp_path, "embed", str(speaker_run), str(wavs["x"]), str(wavs["y"]))
    _ok(proc, tried)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(wavs["x"]), str(wavs["y"])]
    assert len(records[0]["embedding"]) == 16 and np.isfinite(records[0]["embedding"]).all()
    proc, tried = run_base(tmp_path, "verify", str(speaker_run), str(wavs["x"]), str(wavs["y"]))
    _ok(proc, tried)
    assert set(json.loads(proc.stdout)) >= {"score", "threshold", "same_speaker"}


# ----------------------------------------------------------------------------- what needs an extra


def test_plot_without_matplotlib_is_one_line_naming_the_extra(tmp_path, label_run, wavs):
    run_dir, _ = label_run
    proc, _ = run_base(tmp_path, "label", str(run_dir), str(wavs["x"]), "-o", str(tmp_path / "out"), "--plot")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["speechattn: error: --plot needs matplotlib: pip install 'speechattn[train]'"]
    assert not (tmp_path / "out").exists()  # stopped before any work


def test_det_without_matplotlib_is_one_line_naming_the_extra(tmp_path, speaker_run, fsdd_dir, monkeypatch):
    from click.testing import CliRunner

    from speechattn.cli.main import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    res = CliRunner().invoke(main, ["evaluate", str(speaker_run), "--data", str(fsdd_dir / "recordings"), "--det",
                                    str(tmp_path / "det.png")])
    assert res.exit_code == 2, res.output
    assert res.stderr.splitlines() == ["speechattn: error: --det needs matplotlib: pip install 'speechattn[train]'"]


def test_shards_without_webdataset_name_the_extra(tmp_path, monkeypatch):
    from speechattn.data.shard_writer import ShardSink
    from speechattn.utils.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "webdataset", None)
    with pytest.raises(MissingExtraError, match=r"^writing feature shards \(speechattn data shard\) needs "
                                                r"webdataset: pip install 'speechattn\[train\]'$"):
        ShardSink(tmp_path / "shards", {})
    assert not (tmp_path / "shards").exists()


def test_training_without_tensorboard_warns_once_and_keeps_the_csv(tmp_path, monkeypatch, caplog):
    from speechattn.training.logs import RunLogger

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with caplog.at_level("WARNING", logger="speechattn.training.logs"):
        logger = RunLogger(tmp_path)
    logger.log({"epoch": 1, "step": 3, "loss": 0.5}, 3)
    logger.close()
    assert [r.getMessage() for r in caplog.records] == [
        "TensorBoard logging needs tensorboard: pip install 'speechattn[train]'; writing log.csv only"]
    assert (tmp_path / "log.csv").read_text().splitlines() == ["epoch,step,loss", "1,3,0.5"]
    assert not (tmp_path / "tensorboard").exists()
