"""Metrics of a trained run on any labelled data (``speechattn evaluate``), through the same
inference path as the commands that use the run: :mod:`~speechattn.evaluation.speaker`,
:mod:`~speechattn.evaluation.labeling`, :mod:`~speechattn.evaluation.ctc` (each an ``evaluate_run``)."""
