"""A toy task, everything a task registers, in one small module (used by test_registry.py).

The task fits ``y = x . w + b`` on synthetic points drawn from the recipe's seed: a recipe
dataclass, a training task for the shared trainer, a model builder, a predictor, an evaluator
(``evaluate_run``) and one CLI verb (``toy-predict``). :data:`ENTRY` is its registry entry, the
one thing a test registers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import click
import torch
from torch import Tensor, nn

from speechattn.inference.runs import load_run_model
from speechattn.models.files import save_model
from speechattn.recipes.registry import TaskCommand, TaskEntry
from speechattn.recipes.train import TrainConfig
from speechattn.utils.device import resolve_device

HERE = "tests.recipes.toy_task"

ENTRY = TaskEntry(
    name="toy",
    description="a toy regression, for the registry's tests",
    recipe=f"{HERE}:ToyRecipe",
    training=f"{HERE}:ToyTask",
    model=f"{HERE}:build_toy_model",
    predictor=f"{HERE}:ToyPredictor",
    evaluator=f"{HERE}:evaluate_run",
    commands=(TaskCommand("toy-predict", f"{HERE}:toy_predict", "Predict y for the points of a JSON file."),),
)

#: The line the data follows (plus a little noise).
TRUE_W = (1.5, -2.0, 0.5)
TRUE_B = 0.25


def synthetic(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """(n, 3) points and their (n,) targets."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(TRUE_W), generator=gen)
    y = x @ torch.tensor(TRUE_W) + TRUE_B + 0.01 * torch.randn(n, generator=gen)
    return x, y


def write_points(path: Path, n: int, seed: int) -> Path:
    """A JSON data file of ``n`` synthetic points: {"x": [[...], ...], "y": [...]}."""
    x, y = synthetic(n, seed)
    path.write_text(json.dumps({"x": x.tolist(), "y": y.tolist()}))
    return path


def read_points(path: str | os.PathLike[str]) -> tuple[Tensor, Tensor | None]:
    data = json.loads(Path(path).read_text())
    return torch.tensor(data["x"]), torch.tensor(data["y"]) if "y" in data else None


@dataclass
class ToyData:
    root: str | None = None
    train_size: int = 256
    dev_size: int = 64
    seed: int = 0


@dataclass
class ToyRecipe:
    task: Literal["toy"] = "toy"
    data: ToyData = field(default_factory=ToyData)
    train: TrainConfig = field(default_factory=TrainConfig)


def build_toy_model(recipe: ToyRecipe) -> nn.Module:
    return nn.Linear(len(TRUE_W), 1)


class ToyTask:
    """The interface :class:`speechattn.training.trainer.Trainer` runs."""

    def __init__(self, recipe: ToyRecipe, progress: bool | None = None) -> None:
        self.recipe = recipe
        self.model = build_toy_model(recipe)
        self.modules = nn.ModuleDict({"model": self.model})
        self.metric = "mse"
        self.metric_mode: Literal["min", "max"] = "min"
        self.device = torch.device("cpu")
        self.train_x, self.train_y = synthetic(recipe.data.train_size, recipe.data.seed)
        self.dev_x, self.dev_y = synthetic(recipe.data.dev_size, recipe.data.seed + 1)

    def steps_per_epoch(self) -> int:
        return -(-len(self.train_x) // self.recipe.train.batch_size)

    def train_batches(self, epoch: int) -> Iterator[Tensor]:
        order = torch.randperm(len(self.train_x), generator=torch.Generator().manual_seed(epoch))
        yield from order.split(self.recipe.train.batch_size)

    def training_step(self, batch: Tensor, progress: float) -> tuple[Tensor, dict[str, float]]:
        x, y = self.train_x[batch].to(self.device), self.train_y[batch].to(self.device)
        return nn.functional.mse_loss(self.model(x).squeeze(-1), y), {}

    def evaluate(self) -> dict[str, float]:
        pred = self.model(self.dev_x.to(self.device)).squeeze(-1).float().cpu()
        return {"mse": float(nn.functional.mse_loss(pred, self.dev_y))}

    def save_best(self, run_dir: Path, metrics: dict[str, float]) -> None:
        save_model(self.model, {"task": "toy", "dev_metrics": metrics}, run_dir)


class ToyPredictor:
    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.device = device

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], device: str | torch.device = "auto") -> "ToyPredictor":
        run = load_run_model(run_dir, "toy", "toy model")
        return cls(run.load_into(build_toy_model(run.recipe)), resolve_device(device))

    def predict(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.model(x.to(self.device)).squeeze(-1).cpu()


def evaluate_run(run_dir: str | Path, data: str, *, data_root: str | None = None, device: Any = "auto",
                 on_skip: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    path = Path(data_root or ".") / data
    x, y = read_points(path)
    if y is None:
        raise ValueError(f"{path}: no targets ('y')")
    pred = ToyPredictor.from_run(run_dir, device).predict(x)
    return {"task": "toy", "points": len(x), "mse": float(nn.functional.mse_loss(pred, y))}


@click.command("toy-predict")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("points", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def toy_predict(run_dir: Path, points: Path) -> None:
    """Predict y for the points of a JSON file."""
    x, _ = read_points(points)
    click.echo(json.dumps([round(v, 4) for v in ToyPredictor.from_run(run_dir, "cpu").predict(x).tolist()]))
