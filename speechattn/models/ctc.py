"""CTC model: global CMVN -> encoder (with subsampling) -> linear token head (no training code here).

The normalisation statistics are buffers of the model (estimated on the training features and
saved with the weights), so with the truncated encoder the whole chain streams exactly:
:meth:`CTCModel.stream` gives the offline logits chunk by chunk. Token index 0 is the CTC blank.
"""

from __future__ import annotations

from torch import nn

from speechattn.models.frame_head import FrameHeadModel

__all__ = ["CTCModel"]


class CTCModel(FrameHeadModel):
    """Per-frame token logits for CTC.

    Args:
        encoder: a frame encoder (see :class:`~speechattn.models.frame_head.FrameHeadModel`):
            speechattn's :class:`~speechattn.nn.encoder.TruncatedEncoder`, or a baseline's.
        vocab_size: V output tokens including the blank (index 0).
        dropout: dropout before the head.

    ``forward(features, lengths) -> (logits (batch, time', V), output_lengths)``; apply
    ``log_softmax(-1)`` (in float32) for CTC.
    """

    def __init__(self, encoder: nn.Module, vocab_size: int, dropout: float = 0.1) -> None:
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (blank + one token), got {vocab_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(encoder, nn.Sequential(nn.Dropout(dropout), nn.Linear(int(encoder.output_dim), vocab_size)))

    @property
    def vocab_size(self) -> int:
        return self.num_outputs
