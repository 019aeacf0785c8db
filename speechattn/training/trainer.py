"""The trainer shared by every task.

A task (speaker, frame labeling, CTC...) provides its modules, its batches, a training step and
a dev evaluation (see :class:`Task`); the trainer owns everything else: AdamW, warm-up + cosine
schedule over the run's progress (epochs or a wall-clock budget, whichever ends first),
gradient clipping, bf16 autocast, a progress bar, the per-epoch CSV/TensorBoard log, the best
checkpoint chosen on dev, early stopping, resuming from the last checkpoint, and seeds.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from speechattn.training.checkpoint import load_state, save_state, write_json
from speechattn.training.logs import RunLogger
from speechattn.training.optim import build_adamw
from speechattn.training.schedule import warmup_cosine

__all__ = ["TrainConfig", "Task", "Trainer", "seed_everything"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """The ``train`` block of a recipe."""

    batch_size: int = 64
    max_epochs: int = 100
    max_minutes: float | None = None
    lr: float = 2e-3
    #: AdamW's (beta1, beta2): moving-average rates of the gradient and of its square.
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    warmup_steps: int = 200
    min_lr_ratio: float = 0.01
    grad_clip: float = 5.0
    precision: Literal["fp32", "bf16"] = "fp32"
    eval_every: int = 1
    early_stopping: int | None = None
    #: seeds the initial weights (``train_recipe`` seeds before building the task), batch order,
    #: augmentation and everything random in training.
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_epochs", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two values in [0, 1), got {list(self.betas)}")
        if self.weight_decay < 0 or self.warmup_steps < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay, warmup_steps and grad_clip must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise ValueError(f"early_stopping must be >= 1 evaluations or null, got {self.early_stopping}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or null, got {self.threads}")


class Task(Protocol):
    """What a task gives the trainer."""

    #: every trainable module (model and loss head); saved in checkpoints.
    modules: nn.ModuleDict
    #: dev metric that selects the best checkpoint, and whether lower ("min") is better.
    metric: str
    metric_mode: Literal["min", "max"]

    def train_batches(self, epoch: int) -> Iterable[Any]:
        """Batches of one epoch (shuffled from the seed and the epoch number)."""

    def steps_per_epoch(self) -> int:
        """Number of batches :meth:`train_batches` yields."""

    def training_step(self, batch: Any, progress: float) -> tuple[Tensor, dict[str, float]]:
        """Loss of one batch and scalars to log; ``progress`` in [0, 1] (for schedules)."""

    def evaluate(self) -> dict[str, float]:
        """Dev metrics of the current weights (modules are in eval mode)."""

    def save_best(self, run_dir: Path, metrics: dict[str, float]) -> None:
        """Write the inference artifacts of the current weights into ``run_dir``."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Runs a :class:`Task` with a :class:`TrainConfig` in ``run_dir``.

    Files: ``checkpoints/last.pt`` (everything needed to resume, written atomically after each
    evaluation), ``log.csv`` (+ ``tensorboard/``), ``metrics.json`` (best dev metrics and a
    summary), and whatever ``task.save_best`` writes (the model) whenever dev improves.
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, progress_bar: bool | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress_bar = progress_bar
        self.last_path = self.run_dir / "checkpoints" / "last.pt"

    def fit(self, task: Task, resume: bool = False) -> dict[str, Any]:
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        params = [p for p in task.modules.parameters() if p.requires_grad]
        optimizer = build_adamw(params, cfg.lr, cfg.weight_decay, cfg.betas)
        state = {"step": 0, "epoch": 0, "elapsed": 0.0, "best": None, "best_epoch": 0, "bad_evals": 0,
                 "best_metrics": {}}
        if resume:
            if not self.last_path.exists():
                raise FileNotFoundError(f"{self.last_path}: no checkpoint to resume from")
            saved = load_state(self.last_path)
            task.modules.load_state_dict(saved["modules"])
            optimizer.load_state_dict(saved["optimizer"])
            torch.set_rng_state(saved["torch_rng"])
            state.update(saved["trainer"])
            log.info("resumed from %s at epoch %d, step %d", self.last_path, state["epoch"], state["step"])

        logger = RunLogger(self.run_dir)
        steps_per_epoch = max(1, task.steps_per_epoch())
        total_steps = cfg.max_epochs * steps_per_epoch
        budget = None if cfg.max_minutes is None else 60.0 * cfg.max_minutes
        start = time.perf_counter() - state["elapsed"]
        stop_reason = "max_epochs"

        def progress() -> float:
            p = state["step"] / total_steps
            if budget is not None:
                p = max(p, (time.perf_counter() - start) / budget)
            return min(p, 1.0)

        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
        while state["epoch"] < cfg.max_epochs:
            epoch = state["epoch"] + 1
            task.modules.train()
            sums: dict[str, float] = {}
            count = 0
            # progress_bar=None: shown on a terminal only.
            disable = None if self.progress_bar is None else not self.progress_bar
            bar = tqdm(task.train_batches(epoch), total=steps_per_epoch, desc=f"epoch {epoch}", leave=False,
                       disable=disable)
            out_of_time = False
            for batch in bar:
                lr = warmup_cosine(state["step"], progress(), cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast:
                    loss, scalars = task.training_step(batch, progress())
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite training loss at epoch {epoch}, step {state['step']}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                state["step"] += 1
                count += 1
                scalars = {"loss": float(loss.detach()), **scalars}
                for k, v in scalars.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                bar.set_postfix({k: f"{v / count:.3g}" for k, v in sums.items()}, refresh=False)
                if budget is not None and time.perf_counter() - start >= budget:
                    out_of_time = True
                    break
            bar.close()
            state["epoch"] = epoch
            row: dict[str, Any] = {"epoch": epoch, "step": state["step"], "lr": lr}
            row.update({f"train_{k}": v / max(count, 1) for k, v in sums.items()})
            is_last = out_of_time or epoch == cfg.max_epochs
            if epoch % cfg.eval_every == 0 or is_last:
                task.modules.eval()
                with torch.inference_mode(), autocast:
                    metrics = task.evaluate()
                row.update({f"dev_{k}": v for k, v in metrics.items()})
                value = metrics[task.metric]
                better = state["best"] is None or (
                    value < state["best"] if task.metric_mode == "min" else value > state["best"]
                )
                if better:
                    state.update(best=value, best_epoch=epoch, bad_evals=0, best_metrics=dict(metrics))
                    task.save_best(self.run_dir, metrics)
                else:
                    state["bad_evals"] += 1
                row["minutes"] = (time.perf_counter() - start) / 60
                state["elapsed"] = time.perf_counter() - start
                self._save_last(task, optimizer, state)
                tqdm.write(
                    f"epoch {epoch}: "
                    + ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float) and k != "lr")
                    + (" (best)" if better else "")
                )
                if cfg.early_stopping is not None and state["bad_evals"] >= cfg.early_stopping:
                    stop_reason = "early_stopping"
                    logger.log(row, state["step"])
                    break
            row.setdefault("minutes", (time.perf_counter() - start) / 60)
            logger.log(row, state["step"])
            if out_of_time:
                stop_reason = "max_minutes"
                break
        logger.close()
        state["elapsed"] = time.perf_counter() - start
        summary = {
            "metric": task.metric,
            "best": state["best"],
            "best_epoch": state["best_epoch"],
            "dev": state["best_metrics"],
            "epochs": state["epoch"],
            "steps": state["step"],
            "minutes": state["elapsed"] / 60,
            "stopped": stop_reason,
        }
        write_json(summary, self.run_dir / "metrics.json")
        return summary

    def _save_last(self, task: Task, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        save_state(
            {
                "modules": task.modules.state_dict(),
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "trainer": {k: v for k, v in state.items()},
            },
            self.last_path,
        )

