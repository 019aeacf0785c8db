"""Per-epoch CSV log and optional TensorBoard events."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any, TextIO

from speechattn.utils.extras import MissingExtraError, require
from speechattn.utils.files import atomic_open_write

__all__ = ["RunLogger"]

log = logging.getLogger(__name__)


def _step(row: dict[str, Any]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


class RunLogger:
    """Appends one row per epoch to ``log.csv`` (columns grow as new metrics appear) and writes
    the same scalars to TensorBoard under ``tensorboard/`` when the package is installed (it comes
    with ``speechattn[train]``; without it, one warning says so and ``log.csv`` has every value)."""

    def __init__(self, run_dir: str | os.PathLike[str], tensorboard: bool = True,
                 keep_until_step: int | None = None) -> None:
        """``keep_until_step``: keep only the rows of an existing log at or before this step (a
        resumed run redoes the epochs after its checkpoint); None keeps every row."""
        self.path = Path(run_dir) / "log.csv"
        self.rows: list[dict[str, Any]] = []
        if self.path.exists():
            with open(self.path, newline="") as f:
                self.rows = list(csv.DictReader(f))
            if keep_until_step is not None:
                self.rows = [r for r in self.rows if _step(r) <= keep_until_step]
        self.writer = None
        if tensorboard:
            try:
                summary = require("torch.utils.tensorboard", "TensorBoard logging", package="tensorboard")
            except MissingExtraError as exc:  # optional: log.csv has every value
                log.warning("%s; writing log.csv only", exc)
            else:
                self.writer = summary.SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def log(self, row: dict[str, Any], step: int) -> None:
        self.rows.append(row)
        columns: list[str] = []
        for r in self.rows:
            columns += [c for c in r if c not in columns]

        def write(f: TextIO) -> None:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)

        atomic_open_write(self.path, write)
        if self.writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
