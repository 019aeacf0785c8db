"""kill -9 in the middle of training, then --resume: bit-identical final weights and a clean log."""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechattn.models.files import load_weights

WORKER = Path(__file__).with_name("kill_worker.py")


def _run(run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(WORKER), str(run_dir), *extra], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    """An uninterrupted run (shared by the tests of this module)."""
    run_dir = tmp_path_factory.mktemp("kill") / "full"
    full = _run(run_dir)
    assert full.returncode == 0, full.stderr[-2000:]
    return run_dir


def test_sigkill_then_resume_gives_bit_identical_weights(tmp_path, full_run):
    # A random step after the first checkpoint (end of epoch 2 = step 12) and before the end (40).
    kill_at = random.Random().randint(13, 39)
    killed = _run(tmp_path / "split", "--kill-at-step", str(kill_at))
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr[-2000:])
    assert not (tmp_path / "split" / "final.safetensors").exists()
    resumed = _run(tmp_path / "split", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_weights(full_run / "final.safetensors"), load_weights(tmp_path / "split" / "final.safetensors")
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after a kill at step {kill_at}"
    rows = lambda d: [(r["epoch"], r["step"]) for r in csv.DictReader(open(d / "log.csv"))]  # noqa: E731
    assert rows(tmp_path / "split") == rows(full_run)  # no row twice, none missing


def test_resume_restores_every_random_state(full_run):
    """Without the task generator's and NumPy's states the resumed run would differ: check that
    the checkpoint carries them."""
    from speechattn.training.checkpoint import load_state

    state = load_state(full_run / "checkpoints" / "last.pt")
    assert {"torch_rng", "python_rng", "numpy_rng", "task_rngs"} <= set(state)
    assert set(state["task_rngs"]) == {"generator"}
