"""What the training workers (``ddp_worker.py``, ``kill_worker.py``) share: their command line and
the parts of their toy tasks that are alike. Imported as ``worker_support``: the workers run as
scripts, with this folder first on ``sys.path``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from speechattn.models.files import save_weights


class ErrorRateTask:
    """A classifier ``modules["net"]`` of the points ``x`` with labels ``y``, on the CPU; dev
    metric = its error rate (%) on all of them; the best weights go to ``model.safetensors``.
    Subclasses set ``x``, ``y`` and ``modules`` and write the training side."""

    metric = "error"
    metric_mode = "min"
    x: torch.Tensor
    y: torch.Tensor
    modules: nn.ModuleDict

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def evaluate(self) -> dict[str, float]:
        pred = self.modules["net"](self.x.to(self.device)).argmax(-1).cpu()
        return {"error": 100.0 * float((pred != self.y).float().mean())}

    def save_best(self, run_dir: Path, metrics: dict[str, float]) -> None:
        save_weights(self.modules["net"], run_dir / "model.safetensors")


def worker_args(add: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The worker's arguments: ``RUN_DIR``, then those that ``add`` puts on the parser, then
    ``--resume``. Sets one torch thread (the tests start several workers at once)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    if add is not None:
        add(parser)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    return args
