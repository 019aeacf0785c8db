"""Evaluation metrics.

Speaker verification and identification:

* :mod:`speechattn.metrics.verification` - EER, minDCF, DET points, closed-set identification
  accuracy.
* :mod:`speechattn.metrics.scoring` - cosine scoring of embeddings, AS-Norm.
* :mod:`speechattn.metrics.trials` - trial lists (every pair of a set, or read from a file).
* :mod:`speechattn.metrics.plots` - DET plot.

:mod:`speechattn.metrics.errors`: edit-distance error rates (WER, CER, PER).

The package exports the public names (``__all__``) of these modules.
"""

from __future__ import annotations

from speechattn.metrics import errors, plots, scoring, trials, verification
from speechattn.metrics.errors import *  # noqa: F403
from speechattn.metrics.plots import *  # noqa: F403
from speechattn.metrics.scoring import *  # noqa: F403
from speechattn.metrics.trials import *  # noqa: F403
from speechattn.metrics.verification import *  # noqa: F403

__all__ = [*errors.__all__, *verification.__all__, *scoring.__all__, *trials.__all__, *plots.__all__]
