"""CTC model: global CMVN -> encoder (with subsampling) -> linear token head (no training code here).

The normalisation statistics are buffers of the model (estimated on the training features and
saved with the weights), so with the truncated encoder the whole chain streams exactly:
:meth:`CTCModel.stream` gives the offline logits chunk by chunk. Token index 0 is the CTC blank.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from speechattn.audio.cmvn import GlobalCMVN
from speechattn.models.labeler import FrameHeadStream

__all__ = ["CTCModel", "FrameEncoder"]


class FrameEncoder(Protocol):
    """What :class:`CTCModel` needs of an encoder: ``(x, lengths) -> (y, lengths)`` plus sizes."""

    input_dim: int
    output_dim: int

    def __call__(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]: ...

    def output_lengths(self, lengths: Tensor) -> Tensor: ...


class CTCModel(nn.Module):
    """Per-frame token logits for CTC.

    Args:
        encoder: a frame encoder, ``(batch, time, input_dim), (batch,) -> (batch, time', output_dim),
            (batch,)`` with ``input_dim``, ``output_dim`` and ``output_lengths`` (speechattn's
            :class:`~speechattn.nn.encoder.TruncatedEncoder`, or a baseline's).
        vocab_size: V output tokens including the blank (index 0).
        dropout: dropout before the head.
    """

    def __init__(self, encoder: nn.Module, vocab_size: int, dropout: float = 0.1) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (blank + one token), got {vocab_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.cmvn = GlobalCMVN(int(encoder.input_dim))
        self.encoder = encoder
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(int(encoder.output_dim), vocab_size))

    @property
    def vocab_size(self) -> int:
        return self.head[-1].out_features

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(batch,) feature frames -> (batch,) output frames."""
        return self.encoder.output_lengths(lengths)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Logits of a padded batch.

        Args:
            features: (batch, time, input_dim) raw (un-normalised) features.
            lengths: (batch,) valid frames (``None``: all).

        Returns:
            (logits, output_lengths): (batch, time', vocab_size) and (batch,). Apply
            ``log_softmax(-1)`` (in float32) for CTC.
        """
        hidden, out_lengths = self.encoder(self.cmvn(features, lengths), lengths)
        return self.head(hidden), out_lengths

    def stream(self) -> FrameHeadStream:
        """A streaming session (call in eval mode; needs an encoder with ``stream()``)."""
        if not hasattr(self.encoder, "stream"):
            raise ValueError(f"{type(self.encoder).__name__} cannot stream")
        return FrameHeadStream(self)
