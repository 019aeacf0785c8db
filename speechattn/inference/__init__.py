"""Use trained models: a shipped model by name, a model file or a run folder, on waveforms or
files of any length.

    from speechattn.inference import Labeler, SpeakerRecognizer, Transcriber, load
    load("vad").label_file("meeting.flac").segments          # shipped with the package
    SpeakerRecognizer.from_run("runs/speaker").embed_file("a.flac")
    Labeler.from_run("runs/vad").label_file("meeting.flac").segments
    Transcriber.from_run("runs/asr").transcribe_file("lecture.flac").text

Modules: :mod:`~speechattn.inference.runs` (loading a run, the shared predictor base),
:mod:`~speechattn.inference.streaming` (files of any length in bounded memory),
:mod:`~speechattn.inference.speaker`, :mod:`~speechattn.inference.labeler`,
:mod:`~speechattn.inference.transcriber`.
"""

from __future__ import annotations

from speechattn.inference.export import export_model
from speechattn.inference.labeler import Labeler, LabelResult, plot_labels
from speechattn.inference.loading import load, model_task, predictor_class
from speechattn.inference.runs import (
    ModelFileError,
    RunModel,
    RunPredictor,
    load_run,
    load_run_model,
    load_run_recipe,
    model_device,
    open_model,
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
    "export_model",
    "load",
    "load_run",
    "load_run_model",
    "load_run_recipe",
    "model_device",
    "model_task",
    "open_model",
    "plot_labels",
    "predictor_class",
    "prepare_inference",
    "stream_file_outputs",
]
