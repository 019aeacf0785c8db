"""Trainer: learning, best checkpoint, resume, early stopping, time budget, schedule, atomic files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from speechattn.models.files import load_weights, save_weights
from speechattn.recipes.train import TrainConfig
from speechattn.training.checkpoint import load_state
from speechattn.training.schedule import warmup_cosine
from speechattn.training.trainer import Trainer


class ToyTask:
    """Two Gaussian blobs; metric = dev error rate (%)."""

    metric = "error"
    metric_mode = "min"

    def __init__(self, dev_metrics: list[float] | None = None) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.cat([torch.randn(64, 2, generator=gen) + 2, torch.randn(64, 2, generator=gen) - 2])
        self.y = torch.cat([torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)])
        self.modules = nn.ModuleDict({"net": nn.Linear(2, 2)})
        self.scripted = list(dev_metrics) if dev_metrics else None
        self.saved: list[float] = []

    def steps_per_epoch(self) -> int:
        return 4

    def train_batches(self, epoch: int):
        order = torch.randperm(128, generator=torch.Generator().manual_seed(epoch))
        for i in range(4):
            yield order[i * 32 : (i + 1) * 32]

    def training_step(self, batch, progress):
        device = getattr(self, "device", "cpu")  # set by the trainer
        logits = self.modules["net"](self.x[batch].to(device))
        return nn.functional.cross_entropy(logits, self.y[batch].to(device)), {"p": progress}

    def evaluate(self):
        if self.scripted is not None:
            return {"error": self.scripted.pop(0)}
        pred = self.modules["net"](self.x.to(getattr(self, "device", "cpu"))).argmax(-1).cpu()
        return {"error": 100.0 * float((pred != self.y).float().mean())}

    def save_best(self, run_dir: Path, metrics):
        self.saved.append(metrics["error"])
        save_weights(self.modules["net"], run_dir / "model.safetensors")


def test_trainer_learns_and_writes_run_files(tmp_path):
    task = ToyTask()
    summary = Trainer(TrainConfig(max_epochs=5, lr=0.05, warmup_steps=2), tmp_path, progress_bar=False).fit(task)
    assert summary["best"] <= 5.0
    assert summary["epochs"] == 5 and summary["steps"] == 20
    assert json.loads((tmp_path / "metrics.json").read_text())["best"] == summary["best"]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert "dev_error" in rows[0] and "train_loss" in rows[0]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert set(load_weights(tmp_path / "model.safetensors")) == {"weight", "bias"}
    assert any((tmp_path / "tensorboard").glob("events.out.tfevents.*"))  # TensorBoard curves


def test_best_checkpoint_follows_dev_metric(tmp_path):
    task = ToyTask(dev_metrics=[30.0, 20.0, 25.0, 10.0, 15.0])
    summary = Trainer(TrainConfig(max_epochs=5), tmp_path, progress_bar=False).fit(task)
    assert task.saved == [30.0, 20.0, 10.0]
    assert summary["best"] == 10.0 and summary["best_epoch"] == 4


def test_early_stopping(tmp_path):
    task = ToyTask(dev_metrics=[10.0, 11.0, 12.0, 13.0, 9.0, 1.0])
    summary = Trainer(TrainConfig(max_epochs=6, early_stopping=3), tmp_path, progress_bar=False).fit(task)
    assert summary["stopped"] == "early_stopping"
    assert summary["epochs"] == 4 and summary["best"] == 10.0


class ToyTaskWithTest(ToyTask):
    """A ToyTask with a test set: ``evaluate_test`` reloads the best saved weights."""

    def __init__(self, dev_metrics: list[float] | None = None, has_test: bool = True) -> None:
        super().__init__(dev_metrics)
        self.has_test = has_test
        self.best_weights: dict[str, torch.Tensor] = {}
        self.test_calls: list[dict] = []

    def save_best(self, run_dir: Path, metrics):
        super().save_best(run_dir, metrics)
        self.best_weights = {k: v.detach().clone() for k, v in self.modules["net"].state_dict().items()}

    def evaluate_test(self, run_dir: Path):
        if not self.has_test:
            return None
        self.modules["net"].load_state_dict(load_weights(run_dir / "model.safetensors"))
        self.test_calls.append({"training": self.modules.training, "grad": torch.is_grad_enabled(),
                                "weights": {k: v.clone() for k, v in self.modules["net"].state_dict().items()}})
        return {"error": 12.5, "count": 128}


def test_the_best_model_is_evaluated_on_test_once_after_training(tmp_path, caplog):
    task = ToyTaskWithTest(dev_metrics=[30.0, 10.0, 20.0, 25.0])
    with caplog.at_level("INFO", logger="speechattn.training.trainer"):
        summary = Trainer(TrainConfig(max_epochs=4, lr=0.05), tmp_path, progress_bar=False).fit(task)
    assert summary["best_epoch"] == 2 and len(task.test_calls) == 1
    call = task.test_calls[0]
    assert not call["training"] and not call["grad"]  # eval mode, no grad
    for name, value in task.best_weights.items():  # the epoch-2 model, not the last one
        assert torch.equal(call["weights"][name], value)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"] == summary["test"] == {"error": 12.5, "count": 128}
    assert metrics["dev"] == {"error": 10.0} and metrics["best"] == 10.0  # test chose nothing
    assert "test_note" not in metrics
    assert "test, the best model (epoch 2), reported only: error=12.5, count=128" in caplog.text
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert not any(k.startswith("test") for k in rows[0])  # never logged per epoch


@pytest.mark.parametrize("task", [ToyTask(), ToyTaskWithTest(has_test=False)], ids=["no evaluate_test", "no test set"])
def test_without_a_test_set_metrics_json_says_only_dev_was_available(tmp_path, task):
    summary = Trainer(TrainConfig(max_epochs=2), tmp_path, progress_bar=False).fit(task)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"] is None and summary["test"] is None
    assert metrics["test_note"] == summary["test_note"] == (
        "no test set (data.test): only dev was available (dev chose the model: its metrics are optimistic)")
    assert list(metrics)[:6] == ["metric", "best", "best_epoch", "dev", "test", "test_note"]


class InterruptedTask(ToyTask):
    """Dies (like Ctrl-C or a killed job) when epoch ``die_at`` starts."""

    def __init__(self, die_at: int) -> None:
        super().__init__()
        self.die_at = die_at

    def train_batches(self, epoch: int):
        if epoch == self.die_at:
            raise KeyboardInterrupt
        yield from super().train_batches(epoch)


def test_resume_continues_where_it_stopped(tmp_path):
    cfg = TrainConfig(max_epochs=4, lr=0.05, warmup_steps=2, seed=3)
    torch.manual_seed(0)
    full = ToyTask()
    Trainer(cfg, tmp_path / "full", progress_bar=False).fit(full)

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "split", progress_bar=False).fit(InterruptedTask(die_at=3))
    state = load_state(tmp_path / "split" / "checkpoints" / "last.pt")
    assert state["trainer"]["epoch"] == 2 and state["trainer"]["step"] == 8
    torch.manual_seed(123)  # a fresh process: initial weights differ, the checkpoint restores them
    second = ToyTask()
    summary = Trainer(cfg, tmp_path / "split", progress_bar=False).fit(second, resume=True)
    assert summary["epochs"] == 4 and summary["steps"] == 16
    for a, b in zip(full.modules.parameters(), second.modules.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "split" / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(TrainConfig(), tmp_path, progress_bar=False).fit(ToyTask(), resume=True)


def test_time_cap_stops_training_and_says_so(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        summary = Trainer(TrainConfig(max_epochs=10_000, max_minutes=0.02), tmp_path,
                          progress_bar=False).fit(ToyTask())
    assert summary["stopped"] == "max_minutes"
    assert summary["epochs"] < 10_000
    assert summary["best"] is not None  # the last epoch is always evaluated
    assert summary["planned_steps"] == 40_000 and 0 < summary["completed_fraction"] < 1
    assert summary["completed_fraction"] == pytest.approx(summary["steps"] / 40_000)
    assert "under-trained" in summary["warning"] and "max_minutes" in caplog.text
    assert json.loads((tmp_path / "metrics.json").read_text())["warning"] == summary["warning"]


class StepRecorder(ToyTask):
    """Records the progress and learning rate that each training step sees."""

    def __init__(self) -> None:
        super().__init__()
        self.progress: list[float] = []

    def training_step(self, batch, progress):
        self.progress.append(progress)
        return super().training_step(batch, progress)


def test_max_steps_sets_the_run_length_and_the_schedule(tmp_path):
    task = StepRecorder()  # 4 steps per epoch
    summary = Trainer(TrainConfig(max_steps=10, max_epochs=100, warmup_steps=0), tmp_path,
                      progress_bar=False).fit(task)
    assert summary["steps"] == 10 and summary["epochs"] == 3 and summary["stopped"] == "max_steps"
    assert summary["planned_steps"] == 10 and summary["completed_fraction"] == 1.0
    # Progress is the step count over the planned steps, whatever the wall clock.
    assert task.progress == pytest.approx([i / 10 for i in range(10)])
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == [4, 8, 10]
    assert "dev_error" in rows[-1]  # the shortened last epoch is evaluated
    # The same planned steps with a generous time cap: identical weights (the clock decides nothing).
    other = StepRecorder()
    Trainer(TrainConfig(max_steps=10, max_epochs=100, warmup_steps=0, max_minutes=60), tmp_path / "capped",
            progress_bar=False).fit(other)
    for a, b in zip(task.modules.parameters(), other.modules.parameters()):
        assert torch.equal(a, b)


def test_max_epochs_bounds_max_steps(tmp_path):
    summary = Trainer(TrainConfig(max_steps=1000, max_epochs=2), tmp_path, progress_bar=False).fit(ToyTask())
    assert summary["steps"] == 8 and summary["planned_steps"] == 8 and summary["stopped"] == "max_epochs"


def test_precision_auto_is_fp32_without_native_bf16(tmp_path, monkeypatch):
    import speechattn.utils.device as device

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    summary = Trainer(TrainConfig(max_epochs=1, device="cpu"), tmp_path, progress_bar=False).fit(ToyTask())
    assert summary["precision"] == "fp32" and summary["device"] == "cpu"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    summary = Trainer(TrainConfig(max_epochs=1, device="cpu"), tmp_path / "b", progress_bar=False).fit(ToyTask())
    assert summary["precision"] == "bf16"


def test_bf16_autocast_training_runs(tmp_path):
    with pytest.warns(RuntimeWarning) if not _native_bf16() else _no_warning():
        summary = Trainer(TrainConfig(max_epochs=3, lr=0.05, precision="bf16"), tmp_path,
                          progress_bar=False).fit(ToyTask())
    assert summary["best"] <= 10.0 and summary["precision"] == "bf16"


def _native_bf16() -> bool:
    from speechattn.utils.device import cpu_has_native_bf16

    return cpu_has_native_bf16()


def _no_warning():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_matches_cpu(tmp_path):
    results = {}
    for dev in ("cpu", "cuda"):
        torch.manual_seed(0)
        task = ToyTask()
        summary = Trainer(TrainConfig(max_epochs=2, lr=0.05, precision="fp32", device=dev), tmp_path / dev,
                          progress_bar=False).fit(task)
        assert summary["device"].startswith(dev)
        results[dev] = [p.detach().cpu() for p in task.modules.parameters()]
    for a, b in zip(results["cpu"], results["cuda"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_non_finite_loss_is_reported(tmp_path):
    task = ToyTask()
    task.x[:] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite"):
        Trainer(TrainConfig(max_epochs=1), tmp_path, progress_bar=False).fit(task)


def test_schedule_warmup_then_cosine():
    assert warmup_cosine(0, 0.0, 1.0, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 0.0, 1.0, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 0.5, 1.0, 10) == pytest.approx(0.5)
    assert warmup_cosine(10, 1.0, 1.0, 10, min_lr_ratio=0.1) == pytest.approx(0.1)
    values = [warmup_cosine(20, p / 10, 1.0, 10) for p in range(11)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("kw", [dict(batch_size=0), dict(lr=0), dict(max_minutes=-1), dict(min_lr_ratio=2),
                                dict(max_steps=0), dict(device="tpu"), dict(device="gpu"),
                                dict(early_stopping=0), dict(threads=0), dict(betas=(0.9, 1.0)),
                                dict(betas=(-0.1, 0.98)), dict(betas=(0.9,)),
                                dict(betas=(0.9, 0.98, 0.99))])
def test_bad_train_config(kw):
    with pytest.raises(ValueError):
        TrainConfig(**kw)


def test_adamw_betas_come_from_the_config(tmp_path):
    config = TrainConfig(max_epochs=1, lr=0.05, warmup_steps=0, betas=(0.8, 0.98))
    Trainer(config, tmp_path, progress_bar=False).fit(ToyTask())
    groups = load_state(tmp_path / "checkpoints" / "last.pt")["optimizer"]["param_groups"]
    assert groups and all(tuple(g["betas"]) == (0.8, 0.98) for g in groups)


def test_resume_keeps_the_original_config(tmp_path, fsdd_dir):
    from speechattn.tasks import train_recipe
    from tests.conftest import TINY_SPEAKER

    recipe = Path(__file__).parent.parent.parent / "recipes" / "speaker_fsdd.yaml"
    run_dir = tmp_path / "run"
    train_recipe(recipe, [*TINY_SPEAKER, "train.max_epochs=1"], run_dir=run_dir, progress=False)
    original = (run_dir / "config.yaml").read_text()
    summary = train_recipe(recipe, [*TINY_SPEAKER, "train.max_epochs=2"], run_dir=run_dir, resume=True,
                           progress=False)
    assert summary["epochs"] == 2
    assert (run_dir / "config.yaml").read_text() == original  # the run's own config is never overwritten
    assert "max_epochs: 2" in (run_dir / "config.resume.yaml").read_text()
