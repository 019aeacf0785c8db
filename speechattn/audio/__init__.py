"""Audio frontend: file I/O (soundfile), resampling, Kaldi-style features, CMVN.

Offline and streaming paths give the same numbers: :class:`StreamingResampler` matches
:func:`torchaudio.functional.resample`, :func:`iter_audio_blocks` matches :func:`load_audio`, and
:class:`StreamingFeatureExtractor` matches :class:`FeatureExtractor`.
"""

from __future__ import annotations

from speechattn.audio.cmvn import CMVNStats, GlobalCMVN, utterance_cmvn
from speechattn.audio.features import FeatureConfig, FeatureExtractor, StreamingFeatureExtractor
from speechattn.audio.io import (
    AudioError,
    AudioInfo,
    StreamingResampler,
    audio_info,
    iter_audio_blocks,
    load_audio,
    save_audio,
)

__all__ = [
    "AudioError",
    "AudioInfo",
    "CMVNStats",
    "FeatureConfig",
    "FeatureExtractor",
    "GlobalCMVN",
    "StreamingFeatureExtractor",
    "StreamingResampler",
    "audio_info",
    "iter_audio_blocks",
    "load_audio",
    "save_audio",
    "utterance_cmvn",
]
