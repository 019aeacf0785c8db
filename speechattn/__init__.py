"""speechattn: speech toolkit built on a truncated multi-head self-attention encoder.

Trained models ship with the package and load by name::

    import speechattn
    speechattn.load("vad").label_file("meeting.wav").segments
    speaker = speechattn.load("speaker")
    score, same = speaker.verify(speaker.embed_file("a.wav"), speaker.embed_file("b.wav"))
    speechattn.load("phones").transcribe_file("x.wav").text

The model pieces import without any training or CLI code::

    from speechattn import FeatureExtractor, TruncatedEncoder, truncated_attention

    frontend = FeatureExtractor()                       # waveform -> 80-bin log-mel, 25 ms / 10 ms
    encoder = TruncatedEncoder(input_dim=80)            # (features, lengths) -> (output, lengths)
    feats, frames = frontend(waveforms, num_samples)
    out, out_frames = encoder(feats, frames)

Names are imported on first use, so ``import speechattn`` (and the CLI's ``--help``) does not
load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AudioError": "speechattn.audio",
    "FeatureConfig": "speechattn.audio",
    "FeatureExtractor": "speechattn.audio",
    "GlobalCMVN": "speechattn.audio",
    "StreamingFeatureExtractor": "speechattn.audio",
    "iter_audio_blocks": "speechattn.audio",
    "load_audio": "speechattn.audio",
    "truncated_attention": "speechattn.nn.attention",
    "EncoderConfig": "speechattn.nn.encoder",
    "TruncatedEncoder": "speechattn.nn.encoder",
    "MultiHeadSelfAttention": "speechattn.nn.multihead",
    "EncoderStream": "speechattn.nn.streaming",
    "SpeakerRecognizer": "speechattn.inference",
    "Labeler": "speechattn.inference",
    "Transcriber": "speechattn.inference",
    "FrameLabeler": "speechattn.models.labeler",
    "CTCModel": "speechattn.models.ctc",
    "load": "speechattn.inference",
    "export_model": "speechattn.inference",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from speechattn.audio import (
        AudioError,
        FeatureConfig,
        FeatureExtractor,
        GlobalCMVN,
        StreamingFeatureExtractor,
        iter_audio_blocks,
        load_audio,
    )
    from speechattn.inference import Labeler, SpeakerRecognizer, Transcriber, export_model, load
    from speechattn.models.ctc import CTCModel
    from speechattn.models.labeler import FrameLabeler
    from speechattn.nn.attention import truncated_attention
    from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder
    from speechattn.nn.multihead import MultiHeadSelfAttention
    from speechattn.nn.streaming import EncoderStream


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'speechattn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
