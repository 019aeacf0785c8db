"""Worker of tests/training/test_distributed.py, started by torchrun (or alone for 1 process).

    python -m torch.distributed.run --nproc_per_node 2 ddp_worker.py RUN_DIR BATCH EPOCHS [--die-at E] [--resume]

Trains a small deterministic task (no dropout, no augmentation) with the real Trainer and,
on rank 0, writes the final weights to RUN_DIR/final.safetensors.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from worker_support import ErrorRateTask, worker_args

from speechattn.data.batching import shuffled_batches, shuffled_steps
from speechattn.models.files import save_weights
from speechattn.recipes.train import TrainConfig
from speechattn.training.trainer import Trainer
from speechattn.utils import distributed


class BlobTask(ErrorRateTask):
    """Three Gaussian blobs in 4-d, a 2-layer MLP; dev metric = error rate (%)."""

    def __init__(self, batch_size: int, die_at: int | None = None) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        centers = torch.tensor([[2.0, 0, 0, 1], [-2.0, 1, 0, 0], [0, -2.0, 1, 0]])
        self.y = torch.arange(3).repeat_interleave(64)
        self.x = centers[self.y] + torch.randn(192, 4, generator=gen)
        torch.manual_seed(1)  # the same initial weights in every process
        self.modules = nn.ModuleDict({"net": nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))})
        self.batch_size = batch_size
        self.die_at = die_at

    def steps_per_epoch(self) -> int:
        return shuffled_steps(len(self.y), self.batch_size, distributed.rank_world()[1])

    def train_batches(self, epoch: int):
        if epoch == self.die_at:  # every rank dies at the same point, like a killed job
            raise KeyboardInterrupt
        yield from shuffled_batches(len(self.y), self.batch_size, 7, epoch, *distributed.rank_world())

    def training_step(self, batch, progress):
        logits = self.modules["net"](self.x[batch].to(self.device))
        return nn.functional.cross_entropy(logits, self.y[batch].to(self.device)), {}


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch_size", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("--die-at", type=int, default=None)


def main() -> None:
    args = worker_args(_arguments)
    config = TrainConfig(batch_size=args.batch_size, max_epochs=args.epochs, lr=0.05, warmup_steps=3,
                         eval_every=2, precision="fp32", device="cpu", seed=5)
    task = BlobTask(args.batch_size, args.die_at)
    try:
        Trainer(config, args.run_dir, progress_bar=False).fit(task, resume=args.resume)
    except KeyboardInterrupt:
        distributed.shutdown()
        raise SystemExit(3)
    if distributed.is_main():
        save_weights(task.modules["net"], args.run_dir / "final.safetensors")
    distributed.shutdown()


if __name__ == "__main__":
    main()
