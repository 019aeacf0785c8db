"""Generated test audio shared by the tests and the benchmarks (``benchmarks/inference_memory.py``
imports it too: it puts the repository root on ``sys.path``)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def sparse_wav(path: Path, seconds: float, rate: int, speech: np.ndarray | None = None, every: float = 3600.0) -> Path:
    """A 16-bit mono WAV of ``seconds`` written without writing its samples: the header, then a
    sparse file of zeros (digital silence), with ``speech`` (float in [-1, 1]) written at 0 s and
    then every ``every`` seconds. Takes no disk space for the silence and no time to make."""
    frames = int(seconds * rate)
    size = 2 * frames
    header = (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
              + b"data" + struct.pack("<I", size))
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + size)
        if speech is not None:
            pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
            start = 0.0
            while start + len(speech) / rate <= seconds:
                f.seek(len(header) + 2 * int(start * rate))
                f.write(pcm)
                start += every
    return path
