"""The optimizer every recipe trains with: AdamW, weight decay on matrices only."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["build_adamw"]


def build_adamw(
    params: Iterable[nn.Parameter],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.AdamW:
    """AdamW with ``weight_decay`` on parameters of two or more dimensions (weights of linear
    and convolution layers) and none on vectors (biases, norms' scales and shifts).

    The fused kernel (one pass over all parameters of a group) is used when every parameter
    is on the CPU or a CUDA device, as in training here: torch's default on the CPU is a Python
    loop of small per-parameter operations (~9.5 ms a step for 5 M parameters on 2 cores,
    ~2.6 ms fused). The update is the same AdamW update.
    """
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)
