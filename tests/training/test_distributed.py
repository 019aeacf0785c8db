"""DistributedDataParallel under torchrun: 2 CPU processes (gloo) train exactly like 1 process
with the doubled batch, only rank 0 writes the run files, and a killed 2-process run resumes."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechattn.data.batching import shuffled_batches
from speechattn.models.files import load_weights
from speechattn.utils.distributed import rank_slice

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(run_dir: Path, nproc: int, batch: int, epochs: int, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, str(WORKER)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
        cmd.append(str(WORKER))
    cmd += [str(run_dir), str(batch), str(epochs), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_weights(path / "final.safetensors")


def test_rank_slices_cover_the_global_batch():
    global_batches = list(shuffled_batches(50, 8, seed=1, epoch=2))
    parts = [list(shuffled_batches(50, 4, seed=1, epoch=2, rank=r, world=2)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(global_batches) == 6
    for whole, a, b in zip(global_batches, *parts):
        assert a + b == whole
    with pytest.raises(ValueError, match="cannot be split"):
        rank_slice([1], 0, 2)


def test_two_ranks_equal_one_process_with_doubled_batch_and_resume(tmp_path):
    one = _run(tmp_path / "one", 1, 16, 4)
    assert one.returncode == 0, one.stderr[-2000:]
    two = _run(tmp_path / "two", 2, 8, 4)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert set(a) == set(b)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)
    # The weights moved: the comparison is not of two untouched initialisations.
    assert not torch.allclose(a["0.weight"], _weights_init())
    summary = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4 * (192 // 16)
    rows = list(csv.DictReader(open(tmp_path / "two" / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]  # one writer: no duplicated rows

    # A 2-process run killed at the start of epoch 3 resumes (2 processes) to the same weights.
    died = _run(tmp_path / "resumed", 2, 8, 4, "--die-at", "3")
    assert died.returncode != 0 and not (tmp_path / "resumed" / "final.safetensors").exists()
    resumed = _run(tmp_path / "resumed", 2, 8, 4, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    c = _weights(tmp_path / "resumed")
    for name in a:
        torch.testing.assert_close(c[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def _weights_init() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.nn.Linear(4, 16).weight.detach()
