"""speechattn: speech toolkit built on a truncated multi-head self-attention encoder.

The model pieces import without any training or CLI code::

    from speechattn import FeatureExtractor, TruncatedEncoder, truncated_attention

    frontend = FeatureExtractor()                       # waveform -> 80-bin log-mel, 25 ms / 10 ms
    encoder = TruncatedEncoder(input_dim=80)            # (features, lengths) -> (output, lengths)
    feats, frames = frontend(waveforms, num_samples)
    out, out_frames = encoder(feats, frames)

``SpeakerRecognizer`` (a trained speaker run) is imported on first use.
"""

from __future__ import annotations

from typing import Any

from speechattn.audio import (
    AudioError,
    FeatureConfig,
    FeatureExtractor,
    GlobalCMVN,
    StreamingFeatureExtractor,
    iter_audio_blocks,
    load_audio,
)
from speechattn.nn.attention import truncated_attention
from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder
from speechattn.nn.multihead import MultiHeadSelfAttention
from speechattn.nn.streaming import EncoderStream

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "EncoderConfig",
    "EncoderStream",
    "FeatureConfig",
    "FeatureExtractor",
    "GlobalCMVN",
    "MultiHeadSelfAttention",
    "SpeakerRecognizer",
    "StreamingFeatureExtractor",
    "TruncatedEncoder",
    "iter_audio_blocks",
    "load_audio",
    "truncated_attention",
]


def __getattr__(name: str) -> Any:
    if name == "SpeakerRecognizer":
        from speechattn.inference import SpeakerRecognizer

        return SpeakerRecognizer
    raise AttributeError(f"module 'speechattn' has no attribute {name!r}")
