"""``evaluate``: score a trained run of any task on a data dir.

- speaker runs: verification EER / minDCF (all pairs or ``--trials``), optional AS-Norm cohort,
  DET plot;
- frame-labeling runs: audio + RTTM/TextGrid labels, frame precision / recall / F1 and
  detection error rate;
- CTC runs: transcribed data, phone or character error rate (and word error rate).

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
from speechattn.cli.options import device_option, threads_option

__all__ = ["evaluate"]

RUN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_SPEAKER_ONLY = ("trials", "cohort_ref", "det")


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
@click.argument("run_dir", type=RUN_DIR)
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
def evaluate(ctx: click.Context, run_dir: Path, data_ref: str, trials: Path | None, cohort_ref: str | None,
             det: Path | None, beam: int | None, data_root: str | None, device: Any) -> None:
    """Evaluate a trained run on a data dir."""
    from speechattn.inference import load_run_recipe

    task = load_run_recipe(run_dir).task
    speaker_options = {"--trials": trials, "--cohort": cohort_ref, "--det": det}
    if task != "speaker":
        given = [name for name, value in speaker_options.items() if value is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)}: only for speaker runs (this is a {task!r} run)")
    if task != "ctc" and beam is not None:
        raise click.UsageError(f"--beam: only for ctc runs (this is a {task!r} run)")
    if det is not None:
        from speechattn.utils.extras import require

        require("matplotlib", "--det")  # before any work: one line naming the extra
    report = BatchReport()
    with _reporting_skips_ourselves():
        if task == "frame_labels":
            from speechattn.evaluation.labeling import evaluate_run as evaluate_labels

            metrics = evaluate_labels(run_dir, data_ref, data_root=data_root, device=device, on_skip=report.fail)
        elif task == "ctc":
            from speechattn.evaluation.ctc import evaluate_run as evaluate_ctc

            metrics = evaluate_ctc(run_dir, data_ref, data_root=data_root, beam=beam, device=device,
                                   on_skip=report.fail)
        else:
            from speechattn.evaluation.speaker import evaluate_run as evaluate_speaker

            metrics = evaluate_speaker(run_dir, data_ref, trials=trials, cohort=cohort_ref, det_path=det,
                                       data_root=data_root, device=device, on_skip=report.fail)
    click.echo(json.dumps(metrics, indent=2))
    if report.num_failed:
        count = report.num_failed
        click.echo(f"{count} audio file{'' if count == 1 else 's'} could not be used (left out of the metrics)",
                   err=True)
    ctx.exit(report.exit_code)
