"""``evaluate``: score a trained run of any task on a data dir.

- speaker runs: verification EER / minDCF (all pairs or ``--trials``), optional AS-Norm cohort,
  DET plot;
- frame-labeling runs: audio + RTTM/TextGrid labels, frame precision / recall / F1 and
  detection error rate;
- CTC runs: transcribed data, phone or character error rate (and word error rate);
- a run of any other registered task: its evaluator's metrics (:mod:`speechattn.recipes.registry`).

The run's task (its ``config.yaml``) chooses the evaluator in the task registry; a task that is
not registered is a one-line error.

The metrics are printed as JSON. ``--device`` chooses where the model runs (see
:func:`speechattn.cli.options.device_option`), ``--threads`` how many CPU threads torch uses.

Audio files of the data that cannot be used (unreadable, empty, NaN samples, shorter than one
frame...) are left out of the metrics and reported on stderr as ``speechattn: error: FILE:
reason``, one line each; the metrics are still printed, and the exit status is then 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any, Iterator

import click

from speechattn.cli.batch import BatchReport
from speechattn.cli.options import device_option, model_argument, threads_option

__all__ = ["evaluate"]

#: The task-specific options, as the evaluator's keyword -> the flag. A run takes those its task's
#: registry entry lists in ``evaluate_options``; another one is a usage error.
_TASK_OPTIONS = {"trials": "--trials", "cohort": "--cohort", "det_path": "--det", "beam": "--beam"}


class _DropSkipWarnings(logging.Filter):
    """Drops the feature extractor's "skipped UTT: reason" warnings: the command reports those
    files itself, as error lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("skipped ")


@contextlib.contextmanager
def _reporting_skips_ourselves() -> Iterator[None]:
    logger = logging.getLogger("speechattn.data.featcache")
    dropper = _DropSkipWarnings()
    logger.addFilter(dropper)
    try:
        yield
    finally:
        logger.removeFilter(dropper)


@click.command()
@model_argument
@click.option("--data", "data_ref", required=True,
              help="Data to score: Kaldi dir, CSV/JSONL manifest, audio + label files, or CORPUS:SPLIT "
                   "(paths relative to the data root).")
@click.option("--trials", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Speaker runs: trial list (enroll_id test_id target|nontarget); default: all pairs.")
@click.option("--cohort", "cohort_ref", default=None, help="Speaker runs: data whose speaker means form the AS-Norm cohort.")
@click.option("--det", type=click.Path(dir_okay=False, path_type=Path), help="Speaker runs: write a DET-curve PNG here (needs matplotlib: pip install 'speechattn[train]').")
@click.option("--beam", type=click.IntRange(min=1), default=None, help="CTC runs: beam (1: greedy); default: the recipe's.")
@click.option("--data-root", default=None, help="Data root (default: SPEECHATTN_DATA or ./data).")
@device_option
@threads_option
@click.pass_context
def evaluate(ctx: click.Context, model: str, data_ref: str, trials: Path | None, cohort_ref: str | None,
             det: Path | None, beam: int | None, data_root: str | None, device: Any) -> None:
    """Evaluate a trained run on a data dir.

    MODEL is a shipped model name (`speechattn models` lists them), a model file
    (`speechattn export`) or a run folder (`speechattn train`).
    """
    from speechattn.inference import model_task
    from speechattn.recipes.registry import get_task, task_names

    # An unknown task in the run's config.yaml or the file's header is a one-line UnknownTaskError.
    entry = get_task(model_task(model))
    given = {keyword: value for keyword, value in
             {"trials": trials, "cohort": cohort_ref, "det_path": det, "beam": beam}.items() if value is not None}
    refused: dict[str, list[str]] = {}  # the tasks that take them -> flags this run's task does not take
    for keyword in given:
        if keyword not in entry.evaluate_options:
            owners = " or ".join(n for n in task_names() if keyword in get_task(n).evaluate_options) or "other"
            refused.setdefault(owners, []).append(_TASK_OPTIONS[keyword])
    if refused:
        problem = "; ".join(f"{', '.join(flags)}: only for {owners} runs" for owners, flags in refused.items())
        raise click.UsageError(f"{problem} (this is a {entry.name!r} run)")
    if det is not None:
        from speechattn.utils.extras import require

        require("matplotlib", "--det")  # before any work: one line naming the extra
    report = BatchReport()
    with _reporting_skips_ourselves():
        metrics = entry.evaluator_function()(model, data_ref, data_root=data_root, device=device,
                                             on_skip=report.fail, **given)
    click.echo(json.dumps(metrics, indent=2))
    if report.num_failed:
        count = report.num_failed
        click.echo(f"{count} audio file{'' if count == 1 else 's'} could not be used (left out of the metrics)",
                   err=True)
    ctx.exit(report.exit_code)
