"""Voice-activity training data simulated from read speech and real noise.

A simulated recording is a random sequence of utterances of the source corpus separated by
random gaps, on top of a continuous background noise at a random SNR, with random noise bursts
in some gaps and a random overall level::

    [gap] utt [gap (+ noise burst)] utt [gap] ... utt [gap]   + background noise, x gain

**Reference labels** come from each utterance's *clean* signal, before anything is mixed in
(:func:`endpoint`): frame energy (25 ms windows every 10 ms, DC removed) relative to the
utterance's peak, where the peak is the 99th percentile of the frame energies so that one click
cannot set it. Frames within ``threshold_db`` of the peak are speech; runs shorter than
``min_speech_ms`` are dropped (clicks); each run is then extended by ``preroll_ms`` before and
``hangover_ms`` after (so pauses shorter than about the hangover stay inside the speech region,
as weak word endings and stop closures do). The speech segments of a recording are its
utterances' regions shifted to where the utterances were placed.

**Levels.** Each utterance gets a random gain of +-``utterance_gain_db``; the speech level is
the mean power of the speech frames of the whole recording, and the background noise is scaled
to ``snr_db`` below it (``clean_prob`` of the recordings get only a faint floor,
``clean_snr_db``). Noise bursts (another noise file) are placed in a gap with probability
``burst_prob`` at ``burst_db`` relative to the speech level. Finally the mixture is scaled so its
peak sits at ``peak_dbfs`` (which also rules out clipping). Utterances and bursts are faded in
and out over 10 ms.

**Noise split.** Every noise file is cut in time: the first ``1 - dev_noise_fraction`` is used
for training recordings, the rest for dev recordings, so dev never hears training noise samples.

:func:`simulate_split` writes a folder of FLAC files plus one RTTM file (``<split>.rttm``) and is
cached: a folder is reused when its configuration key matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from speechattn.data.labels import Segment, merge_segments, write_rttm
from speechattn.utils.files import replace_dir

__all__ = ["EndpointConfig", "VadSimConfig", "endpoint", "simulate_recording", "simulate_split"]

log = logging.getLogger(__name__)

_FADE_S = 0.01


@dataclass
class EndpointConfig:
    """Energy endpointing of clean utterances (see the module docstring)."""

    frame_ms: float = 25.0
    hop_ms: float = 10.0
    threshold_db: float = -30.0
    peak_percentile: float = 99.0
    floor_margin_db: float = 12.0
    floor_percentile: float = 10.0
    min_speech_ms: float = 100.0
    preroll_ms: float = 50.0
    hangover_ms: float = 150.0

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or self.hop_ms <= 0:
            raise ValueError(f"frame_ms and hop_ms must be > 0, got {self.frame_ms}, {self.hop_ms}")
        if self.threshold_db >= 0:
            raise ValueError(f"threshold_db is relative to the peak and must be < 0, got {self.threshold_db}")
        if not 50.0 <= self.peak_percentile <= 100.0:
            raise ValueError(f"peak_percentile must be in [50, 100], got {self.peak_percentile}")
        if not 0.0 <= self.floor_percentile <= 50.0:
            raise ValueError(f"floor_percentile must be in [0, 50], got {self.floor_percentile}")
        for name in ("min_speech_ms", "preroll_ms", "hangover_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def _check_range(name: str, value: tuple[float, float], low: float | None = None) -> None:
    if value[0] > value[1]:
        raise ValueError(f"{name} must be [min, max] with min <= max, got {list(value)}")
    if low is not None and value[0] < low:
        raise ValueError(f"{name} must be >= {low}, got {list(value)}")


@dataclass
class VadSimConfig:
    """The ``data.simulate`` block of a voice-activity recipe (references are under the data root)."""

    train_speech: str = "speechocean762/train"
    dev_speech: str = "speechocean762/dev"
    noise: str = "noise"
    label: str = "speech"
    seed: int = 0
    dev_seed: int = 1
    train_passes: int = 2
    max_train_utterances: int | None = None
    max_dev_utterances: int | None = None
    utterances_per_recording: tuple[int, int] = (3, 8)
    gap_seconds: tuple[float, float] = (0.1, 4.0)
    snr_db: tuple[float, float] = (-5.0, 20.0)
    clean_prob: float = 0.1
    clean_snr_db: tuple[float, float] = (30.0, 50.0)
    utterance_gain_db: float = 6.0
    burst_prob: float = 0.3
    burst_db: tuple[float, float] = (-10.0, 5.0)
    peak_dbfs: tuple[float, float] = (-35.0, -1.0)
    dev_noise_fraction: float = 0.25
    sample_rate: int = 16000
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    out_dir: str | None = None

    def __post_init__(self) -> None:
        if self.train_passes < 1:
            raise ValueError(f"train_passes must be >= 1, got {self.train_passes}")
        lo, hi = self.utterances_per_recording
        if not 1 <= lo <= hi:
            raise ValueError(f"utterances_per_recording must be [min, max] with 1 <= min <= max, got {[lo, hi]}")
        _check_range("gap_seconds", self.gap_seconds, 0.0)
        for name in ("snr_db", "clean_snr_db", "burst_db", "peak_dbfs"):
            _check_range(name, getattr(self, name))
        if self.peak_dbfs[1] > 0:
            raise ValueError(f"peak_dbfs must be <= 0 dBFS, got {list(self.peak_dbfs)}")
        for name in ("clean_prob", "burst_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.dev_noise_fraction < 1.0:
            raise ValueError(f"dev_noise_fraction must be in (0, 1), got {self.dev_noise_fraction}")
        if self.utterance_gain_db < 0:
            raise ValueError(f"utterance_gain_db must be >= 0, got {self.utterance_gain_db}")
        if not self.label or any(c.isspace() for c in self.label):
            raise ValueError(f"label must be a word without blanks, got {self.label!r}")


# --------------------------------------------------------------------------- endpointing

def frame_energy_db(wave: np.ndarray, rate: int, frame_ms: float = 25.0, hop_ms: float = 10.0) -> np.ndarray:
    """(frames,) energy in dB of ``frame_ms`` windows every ``hop_ms`` (DC removed); frame ``i``
    starts at sample ``i * hop``."""
    win, hop = int(rate * frame_ms / 1000), int(rate * hop_ms / 1000)
    x = np.asarray(wave, dtype=np.float64)
    if x.shape[0] < win:
        return np.zeros(0)
    x = x - x.mean()
    frames = sliding_window_view(x, win)[::hop]
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def endpoint(wave: np.ndarray, rate: int, config: EndpointConfig | None = None) -> list[tuple[float, float]]:
    """Speech regions ``[(start, end), ...]`` in seconds of one clean utterance (module docstring)."""
    cfg = config or EndpointConfig()
    energy = frame_energy_db(wave, rate, cfg.frame_ms, cfg.hop_ms)
    if energy.shape[0] == 0:
        return []
    hop = cfg.hop_ms / 1000
    threshold = max(np.percentile(energy, cfg.peak_percentile) + cfg.threshold_db,
                    np.percentile(energy, cfg.floor_percentile) + cfg.floor_margin_db)
    active = energy > threshold
    duration = len(wave) / rate
    regions: list[list[float]] = []  # [start, end, active seconds]
    for a, b in _runs(active):
        # frame i is centred at i * hop + frame / 2 and stands for +-hop / 2 around it
        start = max(0.0, a * hop + cfg.frame_ms / 2000 - hop / 2 - cfg.preroll_ms / 1000)
        end = min(duration, (b - 1) * hop + cfg.frame_ms / 2000 + hop / 2 + cfg.hangover_ms / 1000)
        if regions and start <= regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], end)
            regions[-1][2] += (b - a) * hop
        else:
            regions.append([start, end, (b - a) * hop])
    return [(r[0], r[1]) for r in regions if r[2] >= cfg.min_speech_ms / 1000 - 1e-9]


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], active, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


# --------------------------------------------------------------------------- mixing

def _db(x: float) -> float:
    return float(10.0 ** (x / 20.0))


def _fade(x: np.ndarray, rate: int) -> np.ndarray:
    n = min(int(_FADE_S * rate), x.shape[0] // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=x.dtype)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _excerpt(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of ``noise`` from a random start, wrapping around."""
    start = int(rng.integers(0, noise.shape[0]))
    idx = (start + np.arange(length)) % noise.shape[0]
    return noise[idx]


def simulate_recording(
    utterances: list[np.ndarray],
    noises: list[np.ndarray],
    config: VadSimConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[Segment]]:
    """One simulated recording.

    Args:
        utterances: clean mono waveforms at ``config.sample_rate`` (float).
        noises: noise waveforms (at least one, each longer than 0.1 s).
        config: levels, gaps and endpointing.
        rng: the random generator (consumed).

    Returns:
        (waveform (samples,) float32, speech segments in seconds, labelled ``config.label``).
    """
    rate = config.sample_rate
    pieces: list[tuple[int, np.ndarray]] = []  # (start sample, signal)
    bursts: list[tuple[int, np.ndarray]] = []
    segments: list[Segment] = []
    speech_power: list[float] = []
    pos = 0

    def gap() -> int:
        return int(rng.uniform(*config.gap_seconds) * rate)

    def add_gap() -> int:
        length = gap()
        if length > int(0.2 * rate) and rng.random() < config.burst_prob:
            src = noises[int(rng.integers(len(noises)))]
            size = int(length * rng.uniform(0.3, 1.0))
            offset = int(rng.integers(0, length - size + 1))
            bursts.append((pos + offset, _fade(_excerpt(src, size, rng), rate)))
        return length

    pos += add_gap()
    for k, utt in enumerate(utterances):
        x = np.asarray(utt, dtype=np.float64)
        x = x - x.mean()
        x = _fade(x * _db(rng.uniform(-config.utterance_gain_db, config.utterance_gain_db)), rate)
        regions = endpoint(x, rate, config.endpoint)
        for start, end in regions:
            segments.append(Segment(round(pos / rate + start, 4), round(pos / rate + end, 4), config.label))
            part = x[int(start * rate) : int(end * rate)]
            if part.size:
                speech_power.append(float(np.mean(part**2)) * part.size)
        pieces.append((pos, x))
        pos += x.shape[0]
        pos += add_gap()
    total = pos
    speech_samples = sum(s.duration for s in segments) * rate
    level = sum(speech_power) / max(speech_samples, 1.0) if speech_power else 1e-4
    mix = np.zeros(total, dtype=np.float64)
    for start, x in pieces:
        mix[start : start + x.shape[0]] += x
    background = np.asarray(_excerpt(noises[int(rng.integers(len(noises)))], total, rng), dtype=np.float64)
    snr = rng.uniform(*(config.clean_snr_db if rng.random() < config.clean_prob else config.snr_db))
    mix += background * np.sqrt(level / max(float(np.mean(background**2)), 1e-12) / 10.0 ** (snr / 10.0))
    for start, b in bursts:
        b = np.asarray(b, dtype=np.float64)
        gain = np.sqrt(level / max(float(np.mean(b**2)), 1e-12) * 10.0 ** (rng.uniform(*config.burst_db) / 10.0))
        mix[start : start + b.shape[0]] += b[: total - start] * gain
    peak = float(np.abs(mix).max()) or 1.0
    mix *= _db(rng.uniform(*config.peak_dbfs)) / peak
    return mix.astype(np.float32), merge_segments(segments)


# --------------------------------------------------------------------------- splits on disk

def _load_noises(folder: Path, rate: int, split: str, dev_fraction: float) -> list[np.ndarray]:
    from speechattn.audio import load_audio

    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".flac", ".wav", ".ogg"))
    if not files:
        raise ValueError(f"{folder}: no noise audio (.flac, .wav, .ogg) found")
    out = []
    for p in files:
        wave, _ = load_audio(p, rate)
        cut = int(wave.numel() * (1.0 - dev_fraction))
        part = wave[:cut] if split == "train" else wave[cut:]
        if part.numel() > int(0.1 * rate):
            out.append(part.numpy())
    if not out:
        raise ValueError(f"{folder}: noise files are too short to split")
    return out


_TRAIN_ONLY = ("train_speech", "seed", "train_passes", "max_train_utterances")
_DEV_ONLY = ("dev_speech", "dev_seed", "max_dev_utterances")


def _key(config: VadSimConfig, split: str, files: list[Path]) -> str:
    h = hashlib.sha1()
    # Only what shapes this split: the dev set stays the same when training settings change.
    other = _TRAIN_ONLY if split == "dev" else _DEV_ONLY
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "out_dir" and k not in other}
    h.update(json.dumps({"split": split, "settings": settings, "version": 1}, sort_keys=True, default=str).encode())
    for p in files:
        try:
            st = os.stat(p)
            h.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\tmissing\n".encode())
    return h.hexdigest()[:16]


def simulate_split(
    config: VadSimConfig, split: str, root: Path, out_dir: Path, progress: bool | None = None
) -> Path:
    """Write (or reuse) the simulated ``split`` ("train" or "dev") under ``out_dir``.

    Returns:
        Path: the folder holding ``rec*.flac`` and ``<split>.rttm`` (``out_dir/<split>-<key>``).
    """
    import soundfile as sf
    from tqdm import tqdm

    from speechattn.audio import AudioError, load_audio
    from speechattn.data.splits import resolve_manifest

    if split not in ("train", "dev"):
        raise ValueError(f"split must be 'train' or 'dev', got {split!r}")
    manifest = resolve_manifest(config.train_speech if split == "train" else config.dev_speech, root)
    limit = config.max_train_utterances if split == "train" else config.max_dev_utterances
    utts = list(manifest)
    if limit is not None and limit < len(utts):
        step = len(utts) / limit
        utts = [utts[int(i * step)] for i in range(limit)]
    noise_dir = Path(config.noise) if Path(config.noise).is_absolute() else root / config.noise
    noise_files = sorted(p for p in noise_dir.glob("*") if p.suffix.lower() in (".flac", ".wav", ".ogg"))
    key = _key(config, split, [u.path for u in utts] + noise_files)
    target = out_dir / f"{split}-{key}"
    if (target / f"{split}.rttm").exists():
        return target
    noises = _load_noises(noise_dir, config.sample_rate, split, config.dev_noise_fraction)
    rng = np.random.default_rng(config.seed if split == "train" else config.dev_seed)
    passes = config.train_passes if split == "train" else 1
    order = np.concatenate([rng.permutation(len(utts)) for _ in range(passes)]).tolist()
    staging = out_dir / f".{split}-{key}.tmp{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rttm = io.StringIO()
    bar = tqdm(total=len(order), desc=f"simulating {split}", disable=None if progress is None else not progress,
               leave=False)
    index = 0
    rec = 0
    try:
        while index < len(order):
            count = int(rng.integers(config.utterances_per_recording[0], config.utterances_per_recording[1] + 1))
            waves = []
            for i in order[index : index + count]:
                try:  # decoded again on each pass: holding the corpus in memory would cost more
                    waves.append(load_audio(utts[i].path, config.sample_rate)[0].numpy())
                except AudioError as err:
                    log.warning("simulation skips %s", err)
            index += count
            bar.update(count)
            if not waves:
                continue
            wave, segments = simulate_recording(waves, noises, config, rng)
            name = f"rec{rec:05d}"
            sf.write(str(staging / f"{name}.flac"), wave, config.sample_rate, subtype="PCM_16")
            write_rttm(name, segments, rttm)
            rec += 1
    finally:
        bar.close()
    (staging / f"{split}.rttm").write_text(rttm.getvalue(), encoding="utf-8")
    replace_dir(staging, target)
    log.info("simulated %d %s recordings in %s", rec, split, target)
    return target
