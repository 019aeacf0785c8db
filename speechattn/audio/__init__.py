"""Audio frontend: file I/O (soundfile), resampling, Kaldi-style features, CMVN.

Offline and streaming paths give the same numbers: :func:`resample` and
:class:`StreamingResampler` match :func:`torchaudio.functional.resample` (with a filter of bounded
size for any pair of rates), :func:`iter_audio_blocks` matches :func:`load_audio`, and
:class:`StreamingFeatureExtractor` matches :class:`FeatureExtractor`.
"""

from __future__ import annotations

from speechattn.audio.cmvn import CMVNStats, GlobalCMVN, utterance_cmvn
from speechattn.audio.features import FeatureConfig, FeatureExtractor, StreamingFeatureExtractor
from speechattn.audio.io import (
    MAX_RESAMPLE_TAPS,
    MAX_SAMPLE_RATE,
    AudioError,
    AudioInfo,
    StreamingResampler,
    audio_info,
    iter_audio_blocks,
    load_audio,
    resample,
    resampling_ratio,
    save_audio,
)

__all__ = [
    "MAX_RESAMPLE_TAPS",
    "MAX_SAMPLE_RATE",
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
    "resample",
    "resampling_ratio",
    "save_audio",
    "utterance_cmvn",
]
