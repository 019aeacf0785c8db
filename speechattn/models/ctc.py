"""CTC model: global CMVN -> encoder (with subsampling) -> linear token head (no training code here).

The normalisation statistics are buffers of the model (estimated on the training features and
saved with the weights), so with the truncated encoder the whole chain streams exactly:
:meth:`CTCModel.stream` gives the offline logits chunk by chunk. Token index 0 is the CTC blank.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from speechattn.data.batching import length_batches
from speechattn.decoding.ctc import CTCHypothesis, decode_log_probs
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


def decode_features(model: nn.Module, feats: Sequence[Tensor], beam: int = 1, batch_frames: int = 60000,
                    device: torch.device | str = "cpu") -> list[CTCHypothesis]:
    """Best hypothesis of each whole utterance's (frames, dim) CPU features, batched by similar
    length; the model runs on ``device``, where it is, and the decoding on the CPU (offline path;
    call in eval mode, under inference mode / autocast as wanted)."""
    out: list[CTCHypothesis | None] = [None] * len(feats)
    for idx, x, lengths in length_batches(feats, batch_frames):
        logits, out_lengths = model(x.to(device), lengths.to(device))
        log_probs = logits.float().log_softmax(-1).cpu()
        for j, hyp in zip(idx, decode_log_probs(log_probs, out_lengths.cpu(), beam)):
            out[j] = hyp
    return out  # type: ignore[return-value]
