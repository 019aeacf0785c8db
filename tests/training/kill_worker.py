"""Worker of tests/training/test_kill_resume.py: a small training run that SIGKILLs itself.

    python kill_worker.py RUN_DIR [--kill-at-step N] [--resume]

The task uses every random source a real run uses: dropout (torch's global RNG), a task
generator (augmentation noise), NumPy and Python's ``random`` (a per-step jitter). On exit it
writes the final weights to RUN_DIR/final.safetensors.
"""

from __future__ import annotations

import os
import random
import signal

import numpy as np
import torch
from torch import nn
from worker_support import ErrorRateTask, worker_args

from speechattn.data.batching import shuffled_batches, shuffled_steps
from speechattn.models.files import save_weights
from speechattn.recipes.train import TrainConfig
from speechattn.training.trainer import Trainer


class NoisyTask(ErrorRateTask):
    def __init__(self, kill_at: int | None) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.y = torch.arange(2).repeat_interleave(48)
        self.x = torch.randn(96, 6, generator=gen) + self.y[:, None] * 1.5
        torch.manual_seed(2)
        self.modules = nn.ModuleDict({"net": nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3),
                                                           nn.Linear(32, 2))})
        self.generator = torch.Generator().manual_seed(11)
        self.kill_at = kill_at
        self.steps = 0

    def steps_per_epoch(self) -> int:
        return shuffled_steps(96, 16)

    def train_batches(self, epoch: int):
        yield from shuffled_batches(96, 16, 3, epoch)

    def training_step(self, batch, progress):
        self.steps += 1
        if self.kill_at is not None and self.steps == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # like `kill -9`, mid-epoch
        x = self.x[batch] + 0.3 * torch.randn(len(batch), 6, generator=self.generator)
        x = x * float(np.random.uniform(0.9, 1.1)) * random.uniform(0.9, 1.1)
        return nn.functional.cross_entropy(self.modules["net"](x), self.y[batch]), {}


def main() -> None:
    args = worker_args(lambda parser: parser.add_argument("--kill-at-step", type=int, default=None))
    torch.use_deterministic_algorithms(True)
    config = TrainConfig(batch_size=16, max_steps=40, lr=0.02, warmup_steps=4, eval_every=2, precision="fp32",
                         device="cpu", seed=4)
    task = NoisyTask(args.kill_at_step)
    Trainer(config, args.run_dir, progress_bar=False).fit(task, resume=args.resume)
    save_weights(task.modules["net"], args.run_dir / "final.safetensors")


if __name__ == "__main__":
    main()
