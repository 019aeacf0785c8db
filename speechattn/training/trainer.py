"""The trainer shared by every task.

A task (speaker, frame labeling, CTC...) provides its modules, its batches, a training step and
a dev evaluation (see :class:`Task`); the trainer owns everything else: the device, AdamW,
warm-up + cosine schedule over the planned number of steps, gradient clipping, hardware-aware
bf16 autocast, DistributedDataParallel under ``torchrun``, a progress bar, the per-epoch
CSV/TensorBoard log, the best checkpoint chosen on dev, early stopping, resuming from the last
checkpoint, seeds, and the final test report.

Dev chooses everything (the best checkpoint, early stopping, the task's thresholds). A test set
(a recipe's ``data.test``) is only reported: after training, the best saved model is evaluated
on it once (the task's optional ``evaluate_test``) and ``metrics.json`` gets ``"test": {...}``; without
one it says ``"test": null`` and ``test_note`` tells that only dev was available.

A run is defined in optimizer steps (``max_steps``, or ``max_epochs`` epochs), so the same recipe
gives the same model on any machine; ``max_minutes`` is only a safety cap, and a run it cuts short
says so in its log and in ``metrics.json`` (``stopped: max_minutes``, ``completed_fraction``).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any, Iterable, Literal, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from speechattn.recipes.train import TrainConfig
from speechattn.training.checkpoint import load_state, save_state
from speechattn.training.logs import RunLogger
from speechattn.training.optim import build_adamw
from speechattn.training.schedule import warmup_cosine
from speechattn.utils import distributed
from speechattn.utils.device import autocast, resolve_device, resolve_precision
from speechattn.utils.files import write_json
from speechattn.utils.provenance import source_commit

__all__ = ["Task", "Trainer", "seed_everything"]

log = logging.getLogger(__name__)


class Task(Protocol):
    """What a task gives the trainer.

    Before training, the trainer moves ``modules`` to its device and sets ``task.device``: the
    task puts its batches there in :meth:`training_step` and runs :meth:`evaluate` there. Under
    torchrun, :meth:`train_batches` yields this process's part of each global batch (see
    :func:`speechattn.utils.distributed.rank_slice`), the same number of batches on every
    rank; only rank 0 evaluates and saves.
    """

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

    # Optional (a task without it reports dev only):
    #
    # def evaluate_test(self, run_dir: Path) -> dict[str, float] | None:
    #     """Test metrics of the best model saved in ``run_dir`` (which it loads into the task's
    #     modules; the trainer sets eval mode, no grad and the precision, as for evaluate()), or
    #     None when the recipe has no test set. Called once, after training (rank 0); nothing is
    #     chosen from it."""


#: ``metrics.json``'s ``test_note`` when the run has no test set.
NO_TEST_NOTE = "no test set (data.test): only dev was available (dev chose the model: its metrics are optimistic)"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Step(nn.Module):
    """The task's training step as a module, so DistributedDataParallel can wrap it: its forward
    is ``task.training_step`` and its parameters are the task's modules."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task_modules = task.modules
        self._task = task

    def forward(self, batch: Any, progress: float) -> tuple[Tensor, dict[str, float]]:
        return self._task.training_step(batch, progress)


def _device_for(config: TrainConfig) -> torch.device:
    """The configured device; under torchrun with CUDA (``auto`` or ``cuda``), LOCAL_RANK's GPU."""
    import os

    device = resolve_device(config.device)
    if device.type == "cuda" and device.index is None and distributed.env_world_size() > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


class Trainer:
    """Runs a :class:`Task` with a :class:`TrainConfig` in ``run_dir``.

    Files: ``checkpoints/last.pt`` (everything needed to resume, written atomically after each
    evaluation), ``log.csv`` (+ ``tensorboard/``), ``metrics.json`` (best dev metrics, test
    metrics of the best model or null, and a summary), and whatever ``task.save_best`` writes
    (the model) whenever dev improves. Under torchrun only rank 0 writes them.
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
        device = _device_for(cfg)
        distributed.init_from_env(device)
        rank, world = distributed.rank_world()
        main = rank == 0
        precision = resolve_precision(cfg.precision, device, warn=main)
        if main:
            log.info("training on %s in %s%s", device, precision,
                     f", {world} processes (DistributedDataParallel)" if world > 1 else "")
        seed_everything(cfg.seed)
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        task.modules.to(device)
        task.device = device  # type: ignore[attr-defined]
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
            _set_rng_states(task, saved)
            state.update(saved["trainer"])
            if main:
                log.info("resumed from %s at epoch %d, step %d", self.last_path, state["epoch"], state["step"])
        step_module: nn.Module = _Step(task)
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            step_module = DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda"
                                                  else None)

        # Rows logged after the checkpoint (epochs redone now) are dropped: no duplicates on resume.
        logger = RunLogger(self.run_dir, keep_until_step=state["step"]) if main else None
        steps_per_epoch = max(1, task.steps_per_epoch())
        total_steps = cfg.planned_steps(steps_per_epoch)
        max_epochs = -(-total_steps // steps_per_epoch)
        budget = None if cfg.max_minutes is None else 60.0 * cfg.max_minutes
        start = time.perf_counter() - state["elapsed"]
        # What sets the run's length: max_steps, unless max_epochs comes first.
        stop_reason = "max_steps" if cfg.max_steps is not None and total_steps == cfg.max_steps else "max_epochs"

        def progress() -> float:
            return min(state["step"] / total_steps, 1.0)

        def out_of_time() -> bool:
            if budget is None:
                return False
            over = torch.tensor([float(time.perf_counter() - start >= budget)])
            if world > 1:  # rank 0's clock decides for everyone: all ranks stop at the same step
                torch.distributed.broadcast(over, 0)
            return bool(over.item())

        lr = cfg.lr
        while state["epoch"] < max_epochs and state["step"] < total_steps:
            epoch = state["epoch"] + 1
            task.modules.train()
            sums: dict[str, float] = {}
            count = 0
            # progress_bar=None: shown on a terminal only; never on ranks other than 0.
            disable = (None if self.progress_bar is None else not self.progress_bar) if main else True
            steps_left = min(steps_per_epoch, total_steps - state["step"])
            bar = tqdm(task.train_batches(epoch), total=steps_left, desc=f"epoch {epoch}", leave=False,
                       disable=disable)
            timed_out = False
            for batch in bar:
                lr = warmup_cosine(state["step"], progress(), cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast(device, precision):
                    loss, scalars = step_module(batch, progress())
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
                if out_of_time():
                    timed_out = True
                    break
                if count >= steps_left:
                    break
            bar.close()
            state["epoch"] = epoch
            row: dict[str, Any] = {"epoch": epoch, "step": state["step"], "lr": lr}
            row.update({f"train_{k}": v / max(count, 1) for k, v in sums.items()})
            is_last = timed_out or state["step"] >= total_steps
            stop_early = False
            if epoch % cfg.eval_every == 0 or is_last:
                if main:
                    better = self._evaluate(task, device, precision, state, row)
                    row["minutes"] = (time.perf_counter() - start) / 60
                    state["elapsed"] = time.perf_counter() - start
                    self._save_last(task, optimizer, state)
                    tqdm.write(
                        f"epoch {epoch}: "
                        + ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float) and k != "lr")
                        + (" (best)" if better else "")
                    )
                    stop_early = cfg.early_stopping is not None and state["bad_evals"] >= cfg.early_stopping
                if world > 1:  # rank 0's decision, for every rank
                    flag = torch.tensor([float(stop_early)])
                    torch.distributed.broadcast(flag, 0)
                    stop_early = bool(flag.item())
            row.setdefault("minutes", (time.perf_counter() - start) / 60)
            if logger is not None:
                logger.log(row, state["step"])
            if stop_early:
                stop_reason = "early_stopping"
                break
            if timed_out:
                stop_reason = "max_minutes"
                break
        if logger is not None:
            logger.close()
        state["elapsed"] = time.perf_counter() - start
        fraction = min(state["step"] / total_steps, 1.0)
        test = self._test(task, device, precision, state) if main else None
        summary = {
            "metric": task.metric,
            "best": state["best"],
            "best_epoch": state["best_epoch"],
            "dev": state["best_metrics"],
            "test": test,
            **({} if test is not None else {"test_note": NO_TEST_NOTE}),
            "epochs": state["epoch"],
            "steps": state["step"],
            "planned_steps": total_steps,
            "completed_fraction": fraction,
            "minutes": state["elapsed"] / 60,
            "stopped": stop_reason,
            "device": str(device),
            "precision": precision,
            "world_size": world,
            "commit": source_commit(),
        }
        if stop_reason == "max_minutes":
            warning = (
                f"train.max_minutes={cfg.max_minutes:g} stopped the run after {state['step']} of {total_steps} "
                f"planned steps ({100 * fraction:.1f} %): the model is under-trained. This machine is slower "
                "than the recipe assumes; raise or remove train.max_minutes to train it fully."
            )
            summary["warning"] = warning
            if main:
                log.warning("%s", warning)
        if main:
            write_json(summary, self.run_dir / "metrics.json")
        distributed.barrier()
        return summary

    def _evaluate(self, task: Task, device: torch.device, precision: str, state: dict[str, Any],
                  row: dict[str, Any]) -> bool:
        """Dev evaluation (rank 0): updates ``state`` and ``row``, saves the best; True if improved."""
        task.modules.eval()
        with torch.inference_mode(), autocast(device, precision):
            metrics = task.evaluate()
        row.update({f"dev_{k}": v for k, v in metrics.items()})
        value = metrics[task.metric]
        better = state["best"] is None or (
            value < state["best"] if task.metric_mode == "min" else value > state["best"]
        )
        if better:
            state.update(best=value, best_epoch=row["epoch"], bad_evals=0, best_metrics=dict(metrics))
            task.save_best(self.run_dir, metrics)
        else:
            state["bad_evals"] += 1
        return better

    def _test(self, task: Task, device: torch.device, precision: str, state: dict[str, Any]
              ) -> dict[str, float] | None:
        """Metrics of the best saved model on the task's test set (rank 0, once, after training),
        or None: no test set, a task without ``evaluate_test``, or no model saved."""
        evaluate_test = getattr(task, "evaluate_test", None)
        if evaluate_test is None or state["best"] is None:
            return None
        task.modules.eval()
        with torch.inference_mode(), autocast(device, precision):
            metrics = evaluate_test(self.run_dir)
        if metrics is not None:
            log.info("test, the best model (epoch %d), reported only: %s", state["best_epoch"],
                     ", ".join(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}"
                               for k, v in metrics.items()))
        return metrics

    def _save_last(self, task: Task, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        save_state(
            {
                "modules": task.modules.state_dict(),
                "optimizer": optimizer.state_dict(),
                **_rng_states(task),
                "trainer": {k: v for k, v in state.items()},
            },
            self.last_path,
        )


def _task_generators(task: Task) -> dict[str, torch.Generator]:
    """The task's own random generators (augmentation draws), by attribute name."""
    return {name: gen for name, gen in sorted(vars(task).items()) if isinstance(gen, torch.Generator)}


def _rng_states(task: Task) -> dict[str, Any]:
    """Every random state a run uses, so that a resumed run continues exactly as an uninterrupted one:
    torch's (CPU and CUDA), Python's, NumPy's and the task's generators (the batch order is a
    function of the seed and the epoch)."""
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "torch_rng": torch.get_rng_state(),
        "python_rng": repr(random.getstate()),
        "numpy_rng": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "task_rngs": {name: gen.get_state() for name, gen in _task_generators(task).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda_rng"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(task: Task, saved: dict[str, Any]) -> None:
    import ast

    torch.set_rng_state(saved["torch_rng"])
    if "python_rng" in saved:  # checkpoints of older versions saved torch's state only
        version, internal, gauss = ast.literal_eval(saved["python_rng"])
        random.setstate((version, tuple(internal), gauss))
    if "numpy_rng" in saved:
        s = saved["numpy_rng"]
        np.random.set_state(("MT19937", s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["gauss"]))
    for name, gen in _task_generators(task).items():
        if name in saved.get("task_rngs", {}):
            gen.set_state(saved["task_rngs"][name])
    if "cuda_rng" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
