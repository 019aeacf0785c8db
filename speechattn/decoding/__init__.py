"""Decoding of model outputs: CTC greedy and prefix beam search with token time stamps.

See :mod:`speechattn.decoding.ctc`.
"""

from __future__ import annotations

from speechattn.decoding.ctc import CTCHypothesis, greedy_decode, prefix_beam_search, spans_to_times

__all__ = ["CTCHypothesis", "greedy_decode", "prefix_beam_search", "spans_to_times"]
