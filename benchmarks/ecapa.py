"""SpeechBrain's ECAPA-TDNN behind speechattn's embedder interface (the speaker baseline).

``EcapaEmbedder`` is a drop-in for :class:`speechattn.models.SpeakerEmbedder` in
``SpeakerTask(..., embedder=...)``: ``forward(features (B, T, F), lengths (B,) frame counts)
-> (B, 192)`` and ``embed_dim = 192``. It wraps
``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN`` with the standard configuration
(channels 512x4 + 1536, 192-dim embedding, ~6.2 M parameters), randomly initialised.

SpeechBrain is not a dependency of speechattn; it is imported when the model is built. Install
it without its dependencies (it then does not touch torch)::

    pip install --no-deps "speechbrain==1.1.2" "hyperpyyaml==1.2.3" "ruamel.yaml>=0.17.28,<0.19"
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

__all__ = ["EcapaEmbedder", "INSTALL_HINT"]

INSTALL_HINT = 'pip install --no-deps "speechbrain==1.1.2" "hyperpyyaml==1.2.3" "ruamel.yaml>=0.17.28,<0.19"'


def _ecapa_class() -> type[nn.Module]:
    # Importing speechbrain applies global "quirks" to torch (TF32 matmul on CUDA, TorchScript
    # profiling off) that would also change the other model in a shared process; keep them off
    # unless the caller chose otherwise.
    os.environ.setdefault("SB_DISABLE_QUIRKS", "allow_tf32,disable_jit_profiling")
    try:
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    except ImportError as exc:  # ModuleNotFoundError, or a missing sub-dependency
        raise ImportError(
            f"the ECAPA-TDNN baseline needs SpeechBrain ({exc}); install it with:\n    {INSTALL_HINT}"
        ) from exc
    return ECAPA_TDNN


class EcapaEmbedder(nn.Module):
    """ECAPA-TDNN (SpeechBrain) with speechattn's embedder interface.

    Args:
        input_dim: feature size F (80 log-mel bins).
        embed_dim: embedding size (192).
        channels: the five block widths (SpeechBrain's default, the "C=512" ECAPA).
    """

    def __init__(
        self, input_dim: int = 80, embed_dim: int = 192, channels: tuple[int, ...] = (512, 512, 512, 512, 1536)
    ) -> None:
        super().__init__()
        ecapa = _ecapa_class()
        self.ecapa = ecapa(input_size=input_dim, channels=list(channels), lin_neurons=embed_dim)
        self.input_dim = input_dim
        self.embed_dim = embed_dim

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """features: (batch, frames, input_dim), lengths: (batch,) valid frame counts -> (batch, embed_dim).

        SpeechBrain takes lengths as fractions of the padded length and turns them back into
        masks with ``arange(T) < fraction * T`` (SE blocks, attentive statistics pooling). We pass
        ``(n - 0.5) / T`` rather than ``n / T``: in float32, ``(n / T) * T`` exceeds ``n`` for
        about one (n, T) pair in twenty, which would let one padded frame into the statistics;
        half a frame below ``n`` gives exactly ``n`` frames whatever the rounding. Padded frames
        are also zeroed: ECAPA's convolutions see them (near a row's end) even though pooling
        ignores them, so this makes the output independent of what the padding holds.
        """
        if features.dim() != 3 or features.shape[-1] != self.input_dim:
            raise ValueError(f"features must be (batch, frames, {self.input_dim}), got {tuple(features.shape)}")
        relative = None
        if lengths is not None:
            frames = features.shape[1]
            counts = lengths.to(device=features.device, dtype=torch.float32).clamp(1, frames)
            relative = (counts - 0.5) / frames
            if bool((counts < frames).any()):
                valid = torch.arange(frames, device=features.device)[None, :] < counts[:, None]
                features = features.masked_fill(~valid[:, :, None], 0.0)
        return self.ecapa(features, relative).squeeze(1)
