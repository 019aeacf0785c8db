"""The DET plot."""

from __future__ import annotations

from speechattn.metrics.plots import plot_det
from tests.metrics.test_verification import random_trials


def test_plot_det_writes_png(tmp_path) -> None:
    scores, labels = random_trials(0, n=400, sep=2.0)
    out = plot_det(scores, labels, tmp_path / "sub" / "det.png", title="dev")
    data = out.read_bytes()
    assert out == tmp_path / "sub" / "det.png"
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
