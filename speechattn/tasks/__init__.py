"""Training tasks: each turns its recipe (:mod:`speechattn.recipes`) into data, a model and a
training step for the shared trainer (:mod:`speechattn.training.trainer`).

``train_recipe`` reads a recipe's ``task:`` key, validates the whole file into that task's
recipe class, builds the training task the task registry names for it
(:mod:`speechattn.recipes.registry`) and runs the trainer in a run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

__all__ = ["train_recipe", "choose_run_dir"]

log = logging.getLogger(__name__)


def choose_run_dir(recipe_path: str | Path, run_dir: str | Path | None, resume: bool) -> Path:
    """``run_dir`` if given; else ``runs/<recipe name>``, numbered ``-2``, ``-3``... so a new run
    never overwrites an old one, and ``--resume`` continues the newest."""
    if run_dir is not None:
        return Path(run_dir)
    stem = Path(recipe_path).stem
    candidates = [Path("runs") / stem] + [Path("runs") / f"{stem}-{i}" for i in range(2, 1000)]
    existing = [c for c in candidates if c.exists()]
    if resume:
        if not existing:
            raise FileNotFoundError(f"runs/{stem}: no earlier run to resume")
        return existing[-1]
    return next(c for c in candidates if not c.exists())


def train_recipe(
    recipe_path: str | Path,
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    resume: bool = False,
    data_root: str | None = None,
    progress: bool | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Train a recipe; returns the summary also written to ``RUN_DIR/metrics.json``.

    Under ``torchrun`` every process calls this: the processes join one group first, rank 0
    prepares the data (feature caches) while the others wait, then they read it.
    """
    from speechattn.recipes import load_task_recipe
    from speechattn.recipes.registry import get_task
    from speechattn.recipes.schema import save_recipe
    from speechattn.training.trainer import Trainer, _device_for, seed_everything
    from speechattn.utils import distributed

    if device is not None:
        overrides = [*overrides, f"train.device={device}"]
    recipe = load_task_recipe(recipe_path, overrides)
    if data_root is not None:
        recipe.data.root = data_root
    distributed.init_from_env(_device_for(recipe.train))
    main = distributed.is_main()
    out = distributed.from_main(lambda: choose_run_dir(recipe_path, run_dir, resume))  # one folder for all ranks
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if resume and (out / "config.yaml").exists():
            save_recipe(recipe, out / "config.resume.yaml")  # the original config is kept
        else:
            save_recipe(recipe, out / "config.yaml")
    if recipe.train.threads:
        import torch

        torch.set_num_threads(recipe.train.threads)
    if not main:
        distributed.barrier()  # rank 0 extracts and caches the features first
    # The task initializes its model from the global RNG: seed it first, so that train.seed fixes
    # the initial weights too (the trainer seeds again before the first step).
    seed_everything(recipe.train.seed)
    task = get_task(recipe.task).training_class()(recipe, progress=progress if main else False)
    if main:
        distributed.barrier()
        log.info("training %s in %s", recipe_path, out)
    summary = Trainer(recipe.train, out, progress_bar=progress).fit(task, resume=resume)
    summary["run_dir"] = str(out)
    return summary
