"""Deprecated location: use ``from speechattn.inference import Transcriber`` (or ``from speechattn import Transcriber``)."""

from __future__ import annotations

import warnings

from speechattn.inference.transcriber import TimedToken, Transcriber, Transcript

__all__ = ["TimedToken", "Transcriber", "Transcript"]

warnings.warn("speechattn.transcriber is deprecated; import from speechattn.inference (or speechattn) instead",
              DeprecationWarning, stacklevel=2)
