"""speechattn evaluate of a frame-labeling run: the streamed labels reproduce training's dev metric."""

from __future__ import annotations

import pytest

from speechattn.evaluation.labeling import evaluate_run
from tests.labeling_support import tiny_label_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, speechocean_dir):
    return tiny_label_run(tmp_path_factory, speechocean_dir)


def test_evaluate_on_audio_plus_rttm(run):
    run_dir, summary, folders = run
    metrics = evaluate_run(run_dir, str(folders["dev"]))
    assert metrics["files"] == 4 and metrics["skipped_files"] == 0 and metrics["classes"] == ["speech"]
    assert metrics["hours"] > 0.001
    # The streaming evaluation reproduces the dev metric of training (same model, same data).
    assert metrics["f1"] == pytest.approx(summary["dev"]["f1"], abs=0.01)
    assert metrics["detection_error_rate"] == pytest.approx(summary["dev"]["detection_error_rate"], abs=0.02)
