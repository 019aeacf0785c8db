"""Writing feature shards (``speechattn data shard``): the format is described in
:mod:`speechattn.data.shards`, which reads them back for training."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from speechattn.audio import AudioError, FeatureConfig, FeatureExtractor, load_audio
from speechattn.data.featcache import frontend_versions
from speechattn.data.manifest import Manifest
from speechattn.data.shards import (
    INDEX_NAME,
    SHARD_PATTERN,
    STORAGE_DTYPES,
    ShardIndex,
    ShardInfo,
    feature_dict,
)
from speechattn.utils.extras import require
from speechattn.utils.files import atomic_write

__all__ = ["ShardSink", "write_shards"]

log = logging.getLogger(__name__)


def _package_version() -> str:
    from speechattn import __version__

    return __version__


class ShardSink:
    """Writes feature samples into webdataset shards and, on :meth:`close`, ``index.json``.

    The one code path that writes shard folders: :func:`write_shards` (``speechattn data shard``)
    feeds it features extracted from audio; a benchmark can feed it features made otherwise.
    Opening it removes an existing ``index.json`` and ``shard-*.tar`` files in ``out``, so an
    interrupted run never leaves an index that describes other shards.

    Args:
        out: the shard folder (created).
        features: the feature configuration the samples were computed with.
        speed_perturb: the speed factors of the samples (recorded in the index).
        shard_size: samples per shard (a shard also ends once it reaches ``shard_bytes``).
        dtype: ``"float16"`` (default; half the disk) or ``"float32"``.
        source: what the samples were made from (recorded in the index).
    """

    def __init__(
        self,
        out: str | Path,
        features: FeatureConfig | dict[str, Any],
        speed_perturb: Sequence[float] = (1.0,),
        *,
        shard_size: int = 1000,
        shard_bytes: float = 512e6,
        dtype: str = "float16",
        source: str | None = None,
    ) -> None:
        wds = require("webdataset", "writing feature shards (speechattn data shard)")
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r}")
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / INDEX_NAME).unlink(missing_ok=True)  # first: a stale index never outlives its shards
        for old in self.out.glob("shard-*.tar"):
            old.unlink()
        self.features = feature_dict(features)
        self.frame_shift_ms = float(self.features.get("frame_shift_ms", 10.0))
        self.speed_perturb = [float(f) for f in speed_perturb]
        self.dtype = dtype
        self.source = source
        self.failures: dict[str, str] = {}
        self._np_dtype = STORAGE_DTYPES[dtype]
        self._counts: dict[str, list[int]] = {}  # file -> [samples, frames], in writing order
        self._speakers: set[str] = set()
        self._written = 0
        self._writer = wds.ShardWriter(str(self.out / SHARD_PATTERN), maxcount=shard_size, maxsize=shard_bytes,
                                       verbose=0)
        self._closed = False

    def add(self, utt_id: str, speaker: str, feats: Tensor | np.ndarray, speed: float = 1.0) -> None:
        """Write one sample: (frames, dim) features of utterance ``utt_id`` by ``speaker``."""
        arr = feats.detach().cpu().numpy() if isinstance(feats, Tensor) else np.asarray(feats)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"{utt_id}: features must be (frames >= 1, dim), got shape {tuple(arr.shape)}")
        arr = np.ascontiguousarray(arr.astype(self._np_dtype, copy=False))
        if self._np_dtype == np.float16 and not np.isfinite(arr).all():
            raise ValueError(f"{utt_id}: features overflow float16; write the shards with dtype float32")
        meta = {"id": utt_id, "speaker": str(speaker), "frames": int(arr.shape[0]), "speed": float(speed)}
        self._writer.write({"__key__": f"s{self._written:09d}", "feats.npy": arr, "json": meta})
        counts = self._counts.setdefault(Path(self._writer.fname).name, [0, 0])
        counts[0] += 1
        counts[1] += int(arr.shape[0])
        self._speakers.add(str(speaker))
        self._written += 1

    def skip(self, utt_id: str, reason: str) -> None:
        """Record an utterance that could not be read (reported, and listed in the index)."""
        log.warning("skipped %s: %s", utt_id, reason)
        self.failures[utt_id] = reason

    def close(self) -> ShardIndex:
        """Finish the last shard and write ``index.json`` (atomically, last)."""
        if self._closed:
            raise RuntimeError("ShardSink already closed")
        self._closed = True
        self._writer.close()
        if not self._written:
            raise ValueError(f"{self.out}: no readable audio to write (skipped {len(self.failures)} files)")
        shards = [ShardInfo(f, c[0], c[1]) for f, c in self._counts.items()]
        total_frames = sum(s.frames for s in shards)
        index = ShardIndex(
            folder=self.out,
            features=self.features,
            speed_perturb=self.speed_perturb,
            dtype=self.dtype,
            shards=shards,
            total_samples=self._written,
            total_frames=total_frames,
            total_hours=total_frames * self.frame_shift_ms / 1000.0 / 3600.0,
            speakers=sorted(self._speakers),
            skipped=dict(self.failures),
            package_version=_package_version(),
            source=self.source,
            frontend=frontend_versions(),
        )
        text = json.dumps(index.to_json(), indent=1) + "\n"
        atomic_write(self.out / INDEX_NAME, lambda tmp: Path(tmp).write_text(text))
        return index

    def abort(self) -> None:
        """Close the open shard without writing an index (the folder stays unusable)."""
        if not self._closed:
            self._closed = True
            self._writer.close()


def _utterance_features(path: Path, extractor: FeatureExtractor, speed: float) -> Tensor:
    """(frames, dim) features of one file at one speed (as featcache extracts them)."""
    import torchaudio

    rate = extractor.config.sample_rate
    wave, _ = load_audio(path, rate)
    if speed != 1.0:
        wave = torchaudio.functional.resample(wave, int(round(rate * speed)), rate)
    f, n = extractor(wave[None])
    if int(n[0]) == 0:
        raise AudioError(f"{path}: shorter than one frame")
    return f[0, : int(n[0])]


def write_shards(
    manifest: Manifest,
    out: str | Path,
    features: FeatureConfig,
    speed_perturb: Sequence[float] = (1.0,),
    *,
    shard_size: int = 1000,
    dtype: str = "float16",
    seed: int = 0,
    source: str | None = None,
    progress: bool | None = None,
) -> ShardIndex:
    """Extract the features of every utterance (and its speed-perturbed copies) into shards.

    Utterances are extracted one at a time and written at once, so memory does not grow with
    the corpus. The (utterance, speed) pairs are written in an order shuffled from ``seed``.
    Unreadable files are logged, skipped and listed in the index under ``skipped``.

    Returns:
        The index written to ``out/index.json``.
    """
    if not speed_perturb or any(f <= 0 for f in speed_perturb):
        raise ValueError(f"speed factors must be > 0, got {list(speed_perturb)}")
    missing = [u.id for u in manifest if u.speaker is None]
    if missing:
        raise ValueError(f"the data has no speaker labels (first: {missing[0]}); shards need utt2spk")
    extractor = FeatureExtractor(features)
    pairs = [(u, float(s)) for u in manifest for s in speed_perturb]
    random.Random(seed).shuffle(pairs)
    sink = ShardSink(out, features, speed_perturb, shard_size=shard_size, dtype=dtype, source=source)
    try:
        with torch.inference_mode():
            for utt, speed in tqdm(pairs, desc="shards", disable=None if progress is None else not progress,
                                   leave=False):
                tag = "" if speed == 1.0 else f"-sp{speed:g}"
                try:
                    feats = _utterance_features(utt.path, extractor, speed)
                except AudioError as err:
                    sink.skip(f"{utt.id}{tag}", str(err))
                    continue
                sink.add(f"{utt.id}{tag}", f"{utt.speaker}{tag}", feats, speed)
    except BaseException:
        sink.abort()
        raise
    return sink.close()
