"""Use trained runs: load a run folder, and run its model on waveforms or files of any length.

    from speechattn.inference import Labeler, SpeakerRecognizer, Transcriber
    SpeakerRecognizer.from_run("runs/speaker").embed_file("a.flac")
    Labeler.from_run("runs/vad").label_file("meeting.flac").segments
    Transcriber.from_run("runs/asr").transcribe_file("lecture.flac").text

Modules: :mod:`~speechattn.inference.runs` (loading a run, the shared predictor base),
:mod:`~speechattn.inference.streaming` (files of any length in bounded memory),
:mod:`~speechattn.inference.speaker`, :mod:`~speechattn.inference.labeler`,
:mod:`~speechattn.inference.transcriber`.
"""

from __future__ import annotations

from speechattn.inference.labeler import Labeler, LabelResult, plot_labels
from speechattn.inference.runs import (
    ModelFileError,
    RunModel,
    RunPredictor,
    load_run,
    load_run_model,
    load_run_recipe,
    model_device,
    prepare_inference,
)
from speechattn.inference.speaker import SpeakerRecognizer
from speechattn.inference.streaming import stream_file_outputs
from speechattn.inference.transcriber import TimedToken, Transcriber, Transcript

__all__ = [
    "LabelResult",
    "Labeler",
    "ModelFileError",
    "RunModel",
    "RunPredictor",
    "SpeakerRecognizer",
    "TimedToken",
    "Transcriber",
    "Transcript",
    "load_run",
    "load_run_model",
    "load_run_recipe",
    "model_device",
    "plot_labels",
    "prepare_inference",
    "stream_file_outputs",
]
