"""Kaldi-compatible filterbank / MFCC features, batched and streaming.

:class:`FeatureExtractor` computes the same features as :func:`torchaudio.compliance.kaldi.fbank`
and :func:`torchaudio.compliance.kaldi.mfcc` ("snip edges" framing, DC removal, pre-emphasis,
Povey window, power spectrum, Kaldi mel banks, log, DCT + liftering) but vectorised over the whole
batch, and only for each utterance's valid frames. Every frame depends only on its own samples, so
:class:`StreamingFeatureExtractor` reproduces the offline frames exactly from audio pushed in
arbitrary chunks.

The per-frame arithmetic runs in float64 (output is float32). That makes results independent of
how frames are grouped into batches or chunks (float32 FFTs/GEMMs are not bit-reproducible across
shapes, and the log amplifies tiny errors in near-silent bands), which is what lets streaming match
offline to 1e-5.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from dataclasses import dataclass

import torch
import torchaudio
from torch import Tensor

__all__ = ["FeatureConfig", "FeatureExtractor", "StreamingFeatureExtractor"]

#: Kaldi's cepstral liftering coefficient (``--cepstral-lifter``), applied to MFCCs.
CEPSTRAL_LIFTER = 22.0
#: Floor on mel energies before the log (float32 machine epsilon, as Kaldi).
_LOG_FLOOR = float(torch.finfo(torch.float32).eps)
#: Frames processed per chunk inside the batched computation (bounds temporary memory).
_CHUNK_FRAMES = 1024
#: Half-width of the delta regression window (``win_length=5`` in compute_deltas).
_DELTA_N = 2

_KINDS = ("fbank", "mfcc")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class FeatureConfig:
    """Feature settings (Kaldi conventions).

    Args:
        kind (str): ``"fbank"`` (log mel filterbank) or ``"mfcc"``. (Default: ``"fbank"``)
        sample_rate (int): Rate of the input waveforms. (Default: ``16000``)
        num_mel_bins (int): Number of triangular mel bins (at least 4). (Default: ``80``)
        num_ceps (int): MFCC coefficients incl. C0, ``<= num_mel_bins`` (mfcc only). (Default: ``13``)
        frame_length_ms (float): Window length in milliseconds. (Default: ``25.0``)
        frame_shift_ms (float): Hop in milliseconds. (Default: ``10.0``)
        deltas (int): 0, 1 (append deltas) or 2 (append deltas and delta-deltas). (Default: ``0``)
        low_freq (float): Low cutoff of the mel bins in Hz. (Default: ``20.0``)
        high_freq (float): High cutoff in Hz; ``<= 0`` means offset from Nyquist. (Default: ``0.0``)
        preemphasis (float): Pre-emphasis coefficient in ``[0, 1]``. (Default: ``0.97``)
        dither (float): Gaussian dither added in training mode only. (Default: ``0.0``)
    """

    kind: str = "fbank"
    sample_rate: int = 16000
    num_mel_bins: int = 80
    num_ceps: int = 13
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    deltas: int = 0
    low_freq: float = 20.0
    high_freq: float = 0.0
    preemphasis: float = 0.97
    dither: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        for name in ("sample_rate", "num_mel_bins", "num_ceps", "deltas"):
            value = getattr(self, name)
            if not _is_int(value):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            setattr(self, name, int(value))
        for name in ("frame_length_ms", "frame_shift_ms", "low_freq", "high_freq", "preemphasis", "dither"):
            value = getattr(self, name)
            if not _is_real(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            setattr(self, name, float(value))
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.num_mel_bins < 4:
            raise ValueError(f"num_mel_bins must be >= 4 (Kaldi mel banks), got {self.num_mel_bins}")
        if self.kind == "mfcc" and not 1 <= self.num_ceps <= self.num_mel_bins:
            raise ValueError(f"num_ceps must be in [1, num_mel_bins={self.num_mel_bins}], got {self.num_ceps}")
        if self.deltas not in (0, 1, 2):
            raise ValueError(f"deltas must be 0, 1 or 2, got {self.deltas}")
        if self.frame_length_ms <= 0 or self.frame_shift_ms <= 0:
            raise ValueError(
                f"frame_length_ms and frame_shift_ms must be positive, got {self.frame_length_ms}, {self.frame_shift_ms}"
            )
        if self.frame_length < 2:
            raise ValueError(f"frame_length_ms={self.frame_length_ms} gives fewer than 2 samples per frame")
        if self.frame_shift < 1:
            raise ValueError(f"frame_shift_ms={self.frame_shift_ms} gives less than 1 sample per hop")
        nyquist = self.sample_rate / 2
        high = self.high_freq if self.high_freq > 0 else nyquist + self.high_freq
        if not (0.0 <= self.low_freq < nyquist and 0.0 < high <= nyquist and self.low_freq < high):
            raise ValueError(
                f"bad mel band: low_freq={self.low_freq}, high_freq={self.high_freq} (-> {high} Hz) "
                f"for Nyquist {nyquist} Hz"
            )
        if not 0.0 <= self.preemphasis <= 1.0:
            raise ValueError(f"preemphasis must be in [0, 1], got {self.preemphasis}")
        if self.dither < 0.0:
            raise ValueError(f"dither must be >= 0, got {self.dither}")

    @property
    def frame_length(self) -> int:
        """Window length in samples (truncated, as Kaldi)."""
        return int(self.sample_rate * self.frame_length_ms * 0.001)

    @property
    def frame_shift(self) -> int:
        """Hop in samples (truncated, as Kaldi)."""
        return int(self.sample_rate * self.frame_shift_ms * 0.001)

    @property
    def fft_length(self) -> int:
        """FFT size: ``frame_length`` rounded up to a power of two."""
        return 1 << (self.frame_length - 1).bit_length()

    @property
    def feature_dim(self) -> int:
        """Output dimension: ``num_mel_bins`` (fbank) or ``num_ceps`` (mfcc), times ``1 + deltas``."""
        base = self.num_mel_bins if self.kind == "fbank" else self.num_ceps
        return base * (1 + self.deltas)

    def num_frames(self, num_samples: int) -> int:
        """Frames for a clip of ``num_samples``: ``1 + (n - frame_length) // frame_shift``, or 0."""
        if num_samples < self.frame_length:
            return 0
        return 1 + (num_samples - self.frame_length) // self.frame_shift


def _povey_window(length: int) -> Tensor:
    return torch.hann_window(length, periodic=False, dtype=torch.float64).pow(0.85)


def _dct_lifter_matrix(num_ceps: int, num_mel_bins: int) -> Tensor:
    """Kaldi's DCT-II (orthonormal, C0 scaled by sqrt(1/M)) times the lifter, `(num_mel_bins, num_ceps)`."""
    dct = torchaudio.functional.create_dct(num_mel_bins, num_mel_bins, "ortho").to(torch.float64)
    dct[:, 0] = math.sqrt(1.0 / num_mel_bins)
    dct = dct[:, :num_ceps]
    i = torch.arange(num_ceps, dtype=torch.float64)
    lifter = 1.0 + 0.5 * CEPSTRAL_LIFTER * torch.sin(math.pi * i / CEPSTRAL_LIFTER)
    return dct * lifter


def _delta_from_padded(padded: Tensor) -> Tensor:
    """Regression deltas (``win_length=5``) of frames already padded by 2 on each side.

    Args:
        padded (Tensor): `(..., frames + 4, dim)`.

    Returns:
        Tensor: `(..., frames, dim)`.
    """
    t = padded.shape[-2] - 2 * _DELTA_N
    p = padded
    d1 = p[..., 3 : 3 + t, :] - p[..., 1 : 1 + t, :]
    d2 = p[..., 4 : 4 + t, :] - p[..., 0:t, :]
    return (d1 + 2.0 * d2) / 10.0


def _batched_deltas(feats: Tensor, num_frames: Tensor) -> Tensor:
    """Deltas per utterance over its valid frames, edges replicated (as compute_deltas).

    Args:
        feats (Tensor): `(batch, frames, dim)`.
        num_frames (Tensor): `(batch,)` valid frames per utterance.

    Returns:
        Tensor: `(batch, frames, dim)`, zero beyond each utterance's frames.
    """
    batch, frames, dim = feats.shape
    if frames == 0:
        return feats.clone()
    idx = torch.arange(-_DELTA_N, frames + _DELTA_N, device=feats.device)[None, :]
    last = (num_frames.to(feats.device) - 1).clamp_min(0)[:, None]
    idx = torch.minimum(idx.clamp_min(0), last)  # (batch, frames + 4)
    padded = feats.gather(1, idx[..., None].expand(batch, idx.shape[1], dim))
    out = _delta_from_padded(padded)
    valid = torch.arange(frames, device=feats.device)[None, :] < num_frames.to(feats.device)[:, None]
    return out * valid[..., None]


class FeatureExtractor(torch.nn.Module):
    """Batched Kaldi fbank / MFCC (+ deltas) with per-utterance lengths.

    Args:
        config (FeatureConfig or None): Settings; defaults if None.
        **overrides: Fields replacing those of ``config`` (e.g. ``kind="mfcc"``).

    Example
        >>> fe = FeatureExtractor(num_mel_bins=80, deltas=1)
        >>> feats, frames = fe(waveforms, lengths)  # (batch, frames, 160), (batch,)
    """

    def __init__(self, config: FeatureConfig | None = None, **overrides) -> None:
        super().__init__()
        if config is not None and not isinstance(config, FeatureConfig):
            raise ValueError(f"config must be a FeatureConfig or None, got {type(config).__name__}")
        known = {f.name for f in dataclasses.fields(FeatureConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown FeatureConfig fields: {unknown}")
        config = FeatureConfig(**overrides) if config is None else dataclasses.replace(config, **overrides)
        self.config = config
        cfg = config
        mel, _ = torchaudio.compliance.kaldi.get_mel_banks(
            cfg.num_mel_bins, cfg.fft_length, float(cfg.sample_rate), cfg.low_freq, cfg.high_freq, 100.0, -500.0, 1.0
        )
        empty = ((mel > 0).sum(dim=1) == 0).nonzero().flatten().tolist()
        if empty:
            # Kaldi refuses this; torchaudio (and e.g. AST's 128-bin recipe) accepts it, giving
            # constant log(eps) channels. Follow torchaudio but say so.
            warnings.warn(
                f"mel bins {empty} contain no FFT bin (num_mel_bins={cfg.num_mel_bins} is too large for "
                f"fft_length={cfg.fft_length} at {cfg.sample_rate} Hz); they will be constant",
                stacklevel=2,
            )
        # (fft_length // 2 + 1, num_mel_bins): Kaldi's banks ignore the Nyquist bin.
        mel = torch.nn.functional.pad(mel.to(torch.float64), (0, 1)).T.contiguous()
        if cfg.kind == "mfcc":
            self._dct = _dct_lifter_matrix(cfg.num_ceps, cfg.num_mel_bins)
        else:
            self._dct = None
        self._window = _povey_window(cfg.frame_length)
        self._mel = mel
        self._device_cache: dict[torch.device, tuple[Tensor, Tensor, Tensor | None]] = {}

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    @property
    def base_dim(self) -> int:
        """Dimension before deltas."""
        return self.config.feature_dim // (1 + self.config.deltas)

    def num_frames(self, lengths: Tensor) -> Tensor:
        """Frames per utterance for sample ``lengths`` (`(batch,)` int64)."""
        L, S = self.config.frame_length, self.config.frame_shift
        lengths = lengths.to(torch.int64)
        return torch.where(lengths >= L, 1 + (lengths - L).clamp_min(0) // S, torch.zeros_like(lengths))

    def _consts(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
        if device not in self._device_cache:
            self._device_cache[device] = (
                self._window.to(device),
                self._mel.to(device),
                None if self._dct is None else self._dct.to(device),
            )
        return self._device_cache[device]

    def _compute(self, x: Tensor) -> Tensor:
        """`(n, frame_length)` float64 frames -> `(n, base_dim)` float32 features."""
        cfg = self.config
        window, mel, dct = self._consts(x.device)
        if self.training and cfg.dither > 0:
            x = x + cfg.dither * torch.randn_like(x)
        x = x - x.mean(dim=1, keepdim=True)
        c = cfg.preemphasis
        if c != 0.0:
            x = torch.cat([x[:, :1] - c * x[:, :1], x[:, 1:] - c * x[:, :-1]], dim=1)
        x = x * window
        spec = torch.fft.rfft(x, n=cfg.fft_length)
        power = spec.real.square() + spec.imag.square()
        feats = (power @ mel).clamp_min_(_LOG_FLOOR).log_()
        if dct is not None:
            feats = feats @ dct
        return feats.to(torch.float32)

    def frame_features(self, frames: Tensor) -> Tensor:
        """Features of independent frames (no deltas).

        Args:
            frames (Tensor): `(num_frames, frame_length)` samples (a strided view is fine).

        Returns:
            Tensor: `(num_frames, base_dim)` float32.
        """
        L = self.config.frame_length
        if frames.dim() != 2 or frames.shape[1] != L:
            raise ValueError(f"frames must be (num_frames, {L}), got {tuple(frames.shape)}")
        out = torch.empty(frames.shape[0], self.base_dim, dtype=torch.float32, device=frames.device)
        for start in range(0, frames.shape[0], _CHUNK_FRAMES):
            chunk = frames[start : start + _CHUNK_FRAMES].to(torch.float64)
            out[start : start + chunk.shape[0]] = self._compute(chunk)
        return out

    def add_deltas(self, feats: Tensor, num_frames: Tensor) -> Tensor:
        """Append ``config.deltas`` orders of deltas to batched base features.

        Args:
            feats (Tensor): `(batch, frames, base_dim)`.
            num_frames (Tensor): `(batch,)`.

        Returns:
            Tensor: `(batch, frames, feature_dim)`.
        """
        parts = [feats]
        for _ in range(self.config.deltas):
            parts.append(_batched_deltas(parts[-1], num_frames))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else feats

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Compute features.

        Args:
            waveforms (Tensor): `(batch, samples)`, zero-padded at the end.
            lengths (Tensor or None): `(batch,)` valid samples per utterance (all if None).

        Returns:
            (Tensor, Tensor):
                Tensor: features `(batch, frames, feature_dim)` float32, zero beyond each
                utterance's frame count; ``frames = max(num_frames)``.
                Tensor: ``num_frames`` `(batch,)` int64, ``1 + (length - frame_length) // frame_shift``
                or 0 when the utterance is shorter than one frame.
        """
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (batch, samples), got shape {tuple(waveforms.shape)}")
        if not waveforms.is_floating_point():
            raise ValueError(f"waveforms must be floating point, got {waveforms.dtype}")
        batch, samples = waveforms.shape
        device = waveforms.device
        if lengths is None:
            lengths = torch.full((batch,), samples, dtype=torch.int64, device=device)
        else:
            if lengths.shape != (batch,):
                raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
            if lengths.is_floating_point() and not bool((lengths == lengths.round()).all()):
                raise ValueError("lengths must hold whole sample counts")
            lengths = lengths.to(device=device, dtype=torch.int64)
            if batch and (int(lengths.min()) < 0 or int(lengths.max()) > samples):
                raise ValueError(f"lengths must lie in [0, {samples}], got {lengths.tolist()}")
        num_frames = self.num_frames(lengths)
        max_frames = int(num_frames.max()) if batch else 0
        feats = torch.zeros(batch, max_frames, self.base_dim, dtype=torch.float32, device=device)
        if max_frames > 0:
            L, S = self.config.frame_length, self.config.frame_shift
            wav = waveforms.to(torch.float32)
            frames = wav[:, : (max_frames - 1) * S + L].unfold(1, L, S)  # (batch, max_frames, L) view
            valid = torch.arange(max_frames, device=device)[None, :] < num_frames[:, None]
            b_idx, t_idx = valid.nonzero(as_tuple=True)
            for start in range(0, b_idx.numel(), _CHUNK_FRAMES):
                b, t = b_idx[start : start + _CHUNK_FRAMES], t_idx[start : start + _CHUNK_FRAMES]
                feats[b, t] = self._compute(frames[b, t].to(torch.float64))
        if self.config.deltas:
            feats = self.add_deltas(feats, num_frames)
        return feats, num_frames

    def extra_repr(self) -> str:
        return repr(self.config)


class _DeltaStream:
    """Streaming ``win_length=5`` deltas with replicate edges, identical to the batched version."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._buf: Tensor | None = None

    def push(self, x: Tensor) -> Tensor:
        if x.shape[0] == 0:
            return x.new_zeros(0, self.dim)
        if self._buf is None:
            self._buf = torch.cat([x[:1].expand(_DELTA_N, -1), x])
        else:
            self._buf = torch.cat([self._buf, x])
        ready = self._buf.shape[0] - 2 * _DELTA_N
        if ready <= 0:
            return x.new_zeros(0, self.dim)
        out = _delta_from_padded(self._buf)
        self._buf = self._buf[ready:].clone()
        return out

    def flush(self) -> Tensor:
        if self._buf is None:
            return torch.zeros(0, self.dim)
        padded = torch.cat([self._buf, self._buf[-1:].expand(_DELTA_N, -1)])
        self._buf = None
        return _delta_from_padded(padded)


class StreamingFeatureExtractor:
    """Feed audio in chunks, get the offline frames of :class:`FeatureExtractor` incrementally.

    Frames are emitted as soon as their samples are in (and, with deltas, the ``2 * deltas``
    following frames they look ahead to). :meth:`flush` ends the utterance with the same edge
    handling as the offline call. Buffers hold less than one frame of samples plus
    ``4 * deltas`` frames, whatever the total length.

    Args:
        extractor (FeatureExtractor): Supplies config and computation (its ``training`` flag
            decides dither).

    Example
        >>> stream = StreamingFeatureExtractor(fe)
        >>> parts = [stream.push(chunk) for chunk in chunks] + [stream.flush()]
        >>> torch.cat(parts)  # == fe(whole[None])[0][0]
    """

    def __init__(self, extractor: FeatureExtractor) -> None:
        if not isinstance(extractor, FeatureExtractor):
            raise ValueError(f"extractor must be a FeatureExtractor, got {type(extractor).__name__}")
        self.extractor = extractor
        self.reset()

    def reset(self) -> None:
        """Drop buffered audio and frames; the next push starts a new utterance."""
        dim = self.extractor.base_dim
        self._samples = torch.zeros(0, dtype=torch.float32)
        self._stages = [_DeltaStream(dim) for _ in range(self.extractor.config.deltas)]
        self._queues = [torch.zeros(0, dim) for _ in range(self.extractor.config.deltas + 1)]

    def _emit(self, base: Tensor, final: bool) -> Tensor:
        levels = [base]
        for stage in self._stages:
            nxt = stage.push(levels[-1])
            if final:
                nxt = torch.cat([nxt, stage.flush()])
            levels.append(nxt)
        self._queues = [torch.cat([q, lv.to(q.device)]) for q, lv in zip(self._queues, levels)]
        ready = self._queues[-1].shape[0]
        out = torch.cat([q[:ready] for q in self._queues], dim=1)
        self._queues = [q[ready:].clone() for q in self._queues]
        return out

    def push(self, samples: Tensor) -> Tensor:
        """Add samples.

        Args:
            samples (Tensor): `(samples,)`, any length.

        Returns:
            Tensor: `(frames, feature_dim)` newly completed frames (possibly 0).
        """
        if samples.dim() != 1:
            raise ValueError(f"samples must be 1-D (samples,), got shape {tuple(samples.shape)}")
        if not samples.is_floating_point():
            raise ValueError(f"samples must be floating point, got {samples.dtype}")
        cfg = self.extractor.config
        L, S = cfg.frame_length, cfg.frame_shift
        buf = torch.cat([self._samples, samples.detach().to(device=self._samples.device, dtype=torch.float32)])
        if buf.shape[0] >= L:
            n = 1 + (buf.shape[0] - L) // S
            base = self.extractor.frame_features(buf[: (n - 1) * S + L].unfold(0, L, S))
            buf = buf[n * S :].clone()
        else:
            base = torch.zeros(0, self.extractor.base_dim)
        self._samples = buf
        return self._emit(base, final=False)

    def flush(self) -> Tensor:
        """End the utterance: emit held-back frames and :meth:`reset`.

        Trailing samples that do not fill a frame are dropped, as in the offline call.

        Returns:
            Tensor: `(frames, feature_dim)`.
        """
        out = self._emit(torch.zeros(0, self.extractor.base_dim), final=True)
        self.reset()
        return out
