"""Feature extraction for a whole manifest, cached on disk.

Training reads every utterance many times; decoding Ogg and computing filterbanks once and
keeping the features in memory (and on disk, for the next run) makes an epoch cost only the
model. The cache key covers the file list (resolved paths, sizes, modification times), the
feature configuration and the code that computes the features (the versions of speechattn,
torch, torchaudio and libsndfile, and the source of :mod:`speechattn.audio`), so a changed
file, setting, upgrade or frontend edit is never served stale features. Unreadable files are
reported and skipped; the rest goes on. Reading an entry marks it used (its modification time),
and :func:`clear_cache` (``speechattn cache clear --unused-for DAYS``) deletes the stale ones.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import torch
import torchaudio
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm import tqdm

from speechattn.audio import AudioError, FeatureExtractor, load_audio
from speechattn.data.manifest import Manifest, Utterance
from speechattn.utils.files import atomic_write

__all__ = ["FeatureSet", "extract_features", "perturbed_features", "noise_features", "cache_dir", "features_dir", "CacheEntry",
           "cache_entries", "clear_cache", "frontend_versions"]

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$SPEECHATTN_CACHE`` or ``~/.cache/speechattn``."""
    return Path(os.environ.get("SPEECHATTN_CACHE", Path.home() / ".cache" / "speechattn"))


def features_dir() -> Path:
    """Where the cached feature sets are: ``cache_dir()/features``."""
    return cache_dir() / "features"


@dataclasses.dataclass
class FeatureSet:
    """Features of the readable utterances of a manifest.

    ``feats[i]`` is (frames_i, dim) for ``manifest[i]``; ``failures`` maps utterance ids that
    could not be read to the one-line reason.
    """

    manifest: Manifest
    feats: list[Tensor]
    failures: dict[str, str]

    @property
    def num_frames(self) -> int:
        return sum(f.shape[0] for f in self.feats)


@functools.lru_cache(maxsize=1)
def _frontend_source_digest() -> str:
    """SHA-1 of the source of :mod:`speechattn.audio` (decoding, resampling, features, CMVN):
    an edit there, even without a version bump, gets new cache entries."""
    import speechattn.audio as audio

    h = hashlib.sha1()
    for path in sorted(Path(audio.__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def frontend_versions() -> dict[str, str]:
    """What the features depend on besides their inputs and configuration: the versions of
    speechattn, torch, torchaudio and libsndfile (decoding), and the frontend's source digest."""
    import soundfile

    import speechattn

    return {
        "speechattn": str(speechattn.__version__),
        "torch": str(torch.__version__),
        "torchaudio": str(torchaudio.__version__),
        "libsndfile": str(getattr(soundfile, "__libsndfile_version__", "unknown")),
        "frontend_source": _frontend_source_digest(),
    }


def _key(manifest: Manifest, extractor: FeatureExtractor, speed: float) -> str:
    h = hashlib.sha1()
    h.update(json.dumps(frontend_versions(), sort_keys=True).encode())
    h.update(json.dumps(dataclasses.asdict(extractor.config), sort_keys=True).encode())
    h.update(f"speed={speed:g}".encode())
    for utt in manifest:
        # The file's real path: a corpus reached through a symlink or a relative path is the same
        # corpus, and gets the same entry.
        real = os.path.realpath(utt.path)
        try:
            st = os.stat(real)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{utt.id}\t{real}\t{stamp}\n".encode())
    return h.hexdigest()[:20]


def extract_features(
    manifest: Manifest,
    extractor: FeatureExtractor,
    *,
    use_cache: bool = True,
    desc: str = "features",
    progress: bool | None = None,
    speed: float = 1.0,
) -> FeatureSet:
    """Features of every utterance (cached under :func:`cache_dir`); bad files are skipped.

    ``speed`` != 1 applies speed perturbation first (tempo and pitch together, like
    ``sox speed``): the audio is resampled as if it had been recorded at ``speed`` times its rate.
    """
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    path = features_dir() / f"{_key(manifest, extractor, speed)}.safetensors"
    if use_cache and path.exists():
        try:
            blob = load_file(str(path))
            meta = json.loads(bytes(blob["meta"].tolist()).decode())
            flat, offsets = blob["feats"], blob["offsets"].tolist()
            feats = [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
            kept = Manifest([u for u in manifest if u.id not in meta["failures"]])
            _mark_used(path)
            return FeatureSet(kept, feats, meta["failures"])
        except Exception as err:  # a corrupt cache is rebuilt, never trusted
            log.warning("ignoring unreadable feature cache %s (%s)", path, err)
    rate = extractor.config.sample_rate
    feats: list[Tensor] = []
    kept_utts = []
    failures: dict[str, str] = {}
    with torch.inference_mode():
        for utt in tqdm(manifest, desc=desc, disable=None if progress is None else not progress, leave=False):
            try:
                wave, _ = load_audio(utt.path, rate)
                if speed != 1.0:
                    wave = torchaudio.functional.resample(wave, int(round(rate * speed)), rate)
            except AudioError as err:
                failures[utt.id] = str(err)
                continue
            f, n = extractor(wave[None])
            if int(n[0]) == 0:
                failures[utt.id] = f"{utt.path}: shorter than one frame"
                continue
            feats.append(f[0, : int(n[0])].clone())
            kept_utts.append(utt)
    for utt_id, reason in failures.items():
        log.warning("skipped %s: %s", utt_id, reason)
    if use_cache and feats:
        offsets = torch.tensor([0] + [f.shape[0] for f in feats]).cumsum(0)
        meta = torch.tensor(list(json.dumps({"failures": failures}).encode()), dtype=torch.uint8)
        blob = {"feats": torch.cat(feats).contiguous(), "offsets": offsets, "meta": meta}
        atomic_write(path, lambda tmp: save_file(blob, tmp))
    return FeatureSet(Manifest(kept_utts), feats, failures)


def _mark_used(path: Path) -> None:
    """Set the entry's modification time to now: :func:`clear_cache` ages entries by last use."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache still serves features
        pass


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """One cached feature set: its file, size in bytes, and when it was last written or read."""

    path: Path
    size: int
    last_used: float  # POSIX time


def _files(pattern: str) -> list[CacheEntry]:
    """The files under :func:`features_dir` that match ``pattern``, with size and mtime."""
    folder = features_dir()
    found = []
    for path in folder.glob(pattern) if folder.is_dir() else ():
        try:
            st = path.stat()
        except OSError:  # removed meanwhile
            continue
        found.append(CacheEntry(path, st.st_size, st.st_mtime))
    return found


def cache_entries() -> list[CacheEntry]:
    """The entries under :func:`features_dir`, least recently used first."""
    return sorted(_files("*.safetensors"), key=lambda e: e.last_used)


#: Temporary files of interrupted writes are removed once they are this old (seconds).
_STALE_TMP_SECONDS = 3600.0


def clear_cache(unused_days: float | None = None, *, dry_run: bool = False) -> list[CacheEntry]:
    """Delete cached feature sets; returns what was (or, with ``dry_run``, would be) deleted.

    Args:
        unused_days (float or None): Only entries not written or read for this many days;
            None: every entry. Leftovers of interrupted writes older than an hour always go.
        dry_run (bool): Only report.
    """
    if unused_days is not None and unused_days < 0:
        raise ValueError(f"unused_days must be >= 0 or None, got {unused_days}")
    now = time.time()
    doomed = [e for e in cache_entries() if unused_days is None or e.last_used < now - unused_days * 86400.0]
    doomed += [e for e in _files(".*.tmp") if now - e.last_used > _STALE_TMP_SECONDS]
    if not dry_run:
        for entry in doomed:
            entry.path.unlink(missing_ok=True)
    return doomed


def perturbed_features(
    manifest: Manifest, extractor: FeatureExtractor, speeds: list[float], progress: bool | None = None
) -> FeatureSet:
    """Features of every utterance at each speed factor (each cached), as one set.

    Copies at a speed other than 1 get the id ``ID-spF`` and the speaker ``SPEAKER-spF`` (a
    perturbed voice counts as another speaker), with ``extra["speed"] = F``.
    """
    import dataclasses as dc

    sets = []
    for speed in speeds:
        fs = extract_features(manifest, extractor, desc=f"train features (speed {speed:g})", progress=progress,
                              speed=speed)
        if speed != 1.0:
            fs = FeatureSet(
                Manifest([dc.replace(u, id=f"{u.id}-sp{speed:g}",
                                     speaker=None if u.speaker is None else f"{u.speaker}-sp{speed:g}",
                                     extra={**u.extra, "speed": speed}) for u in fs.manifest]),
                fs.feats, fs.failures)
        sets.append(fs)
    if len(sets) == 1:
        return sets[0]
    return FeatureSet(Manifest([u for fs in sets for u in fs.manifest]), [f for fs in sets for f in fs.feats],
                      {k: v for fs in sets for k, v in fs.failures.items()})


#: Audio files a noise folder may hold.
NOISE_SUFFIXES = (".flac", ".wav", ".ogg")


def noise_features(folder: Path, extractor: FeatureExtractor, *, min_frames: int = 1,
                   progress: bool | None = None) -> Tensor:
    """The features of every noise recording in ``folder`` at least ``min_frames`` long, end to
    end: (frames, dim), for :func:`speechattn.data.augment.mix_noise` (cached like any features).

    Raises:
        ValueError: no audio in ``folder``, or no recording of ``min_frames`` frames.
    """
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in NOISE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no noise audio found (set data.noise: null to train without noise)")
    noise = extract_features(Manifest([Utterance(id=p.stem, path=p) for p in files]), extractor,
                             desc="noise features", progress=progress)
    long_enough = [f for f in noise.feats if f.shape[0] >= min_frames]
    if not long_enough:
        raise ValueError(f"{folder}: no noise recording is {min_frames} frames long or longer (a training crop)")
    return torch.cat(long_enough)
