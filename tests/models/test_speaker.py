"""Speaker model helpers: per-utterance feature normalisation."""

from __future__ import annotations

import numpy as np
import torch

from speechattn.models.speaker import normalize_features


def test_normalize_features_ignores_padding():
    x = torch.randn(2, 10, 3)
    lengths = torch.tensor([10, 6])
    y = normalize_features(x, lengths, "mean_var")
    alone = normalize_features(x[1:, :6], None, "mean_var")
    assert torch.allclose(y[1, :6], alone[0], atol=1e-5)
    assert y[1, 6:].abs().max() == 0
    assert np.isclose(float(y[0].mean()), 0.0, atol=1e-5)
