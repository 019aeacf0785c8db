"""The ``train`` block shared by every recipe (what :class:`speechattn.training.trainer.Trainer` runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """The ``train`` block of a recipe.

    The run's length is ``max_steps`` optimizer steps when set (``max_epochs`` then only bounds
    it), else ``max_epochs`` epochs; the learning-rate schedule and the tasks' warm-ups follow
    the step count. ``max_minutes`` is an optional safety cap on the training time. With
    ``torchrun``, ``batch_size`` is per process: N processes train on batches of N x batch_size.
    """

    batch_size: int = 64
    max_epochs: int = 100
    max_steps: int | None = None
    max_minutes: float | None = None
    lr: float = 2e-3
    #: AdamW's (beta1, beta2): moving-average rates of the gradient and of its square.
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    warmup_steps: int = 200
    min_lr_ratio: float = 0.01
    grad_clip: float = 5.0
    #: ``auto``: bf16 autocast where the hardware runs bf16 natively (CUDA with bf16, a CPU with
    #: AVX512-BF16 or AMX), else fp32. ``bf16`` on hardware without it warns (emulated, slow).
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    #: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. Under torchrun
    #: with CUDA, each process takes the GPU of its LOCAL_RANK.
    device: str = "auto"
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
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or null, got {self.max_steps}")
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
        if self.device != "auto":
            try:
                dev = torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}") from None
            if dev.type not in ("cpu", "cuda"):
                raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def planned_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole run for epochs of ``steps_per_epoch`` steps."""
        by_epochs = self.max_epochs * max(1, steps_per_epoch)
        return by_epochs if self.max_steps is None else min(self.max_steps, by_epochs)
