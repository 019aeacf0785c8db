"""Audio frontend: file I/O (soundfile), resampling, Kaldi-style features, CMVN.

* :mod:`speechattn.audio.io` - reading and writing audio, files of any length block by block.
* :mod:`speechattn.audio.resampling` - resampling between any two rates (offline and streaming).
* :mod:`speechattn.audio.features` - Kaldi-style log-mel features (offline and streaming).
* :mod:`speechattn.audio.cmvn` - cepstral mean and variance normalisation.

The package exports the public names (``__all__``) of these modules.

Offline and streaming paths give the same numbers: :func:`resample` and
:class:`StreamingResampler` match :func:`torchaudio.functional.resample` (with a filter of bounded
size for any pair of rates), :func:`iter_audio_blocks` matches :func:`load_audio`, and
:class:`StreamingFeatureExtractor` matches :class:`FeatureExtractor`.
"""

from __future__ import annotations

from speechattn.audio import cmvn, features, io, resampling
from speechattn.audio.cmvn import *  # noqa: F403
from speechattn.audio.features import *  # noqa: F403
from speechattn.audio.io import *  # noqa: F403
from speechattn.audio.resampling import *  # noqa: F403

__all__ = [*io.__all__, *resampling.__all__, *features.__all__, *cmvn.__all__]
