"""Deprecated location: use ``from speechattn.inference import Labeler`` (or ``from speechattn import Labeler``)."""

from __future__ import annotations

import warnings

from speechattn.inference.labeler import Labeler, LabelResult, plot_labels

__all__ = ["LabelResult", "Labeler", "plot_labels"]

warnings.warn("speechattn.labeler is deprecated; import from speechattn.inference (or speechattn) instead",
              DeprecationWarning, stacklevel=2)
