"""Frame labeler: global CMVN -> truncated encoder -> per-frame classifier (no training code here).

The normalisation statistics are buffers of the model (estimated on the training data and saved
with the weights), so the whole chain is frame-local up to the encoder's fixed look-ahead and
streams exactly: :meth:`FrameLabeler.stream` gives the offline logits chunk by chunk.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from speechattn.data.batching import length_batches
from speechattn.models.frame_head import FrameHeadModel, FrameHeadStream
from speechattn.nn.encoder import TruncatedEncoder

__all__ = ["FrameLabeler", "FrameHeadStream", "LabelerStream", "MODES"]

MODES = ("single", "multi")


class FrameLabeler(FrameHeadModel):
    """Per-frame class logits at the encoder's frame rate.

    Args:
        encoder: the frame encoder (its subsampling sets the output rate).
        num_classes: K label classes.
        mode: ``"single"``: one class (or none) per frame, K + 1 softmax logits with index 0 =
            "no class"; ``"multi"``: any subset of classes, K sigmoid logits.
        hidden: size of a hidden layer in the head (0: a linear head).
        dropout: dropout before the head.
    """

    def __init__(
        self,
        encoder: TruncatedEncoder,
        num_classes: int,
        mode: Literal["single", "multi"] = "single",
        hidden: int = 0,
        dropout: float = 0.0,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {hidden}")
        outputs = num_classes + 1 if mode == "single" else num_classes
        d = encoder.output_dim
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout)]
            d = hidden
        layers.append(nn.Linear(d, outputs))
        super().__init__(encoder, nn.Sequential(*layers))
        self.mode = mode
        self.num_classes = num_classes

    def posteriors(self, logits: Tensor) -> Tensor:
        """(..., num_outputs) logits -> (..., K) class posteriors (softmax without the "none"
        column in single-label mode, sigmoid in multi-label mode), float32."""
        logits = logits.float()
        if self.mode == "single":
            return logits.softmax(-1)[..., 1:]
        return logits.sigmoid()


#: The frame labeler's stream (the same class serves every frame-head model).
LabelerStream = FrameHeadStream


def batch_posteriors(model: FrameLabeler, feats: Sequence[Tensor], batch_frames: int = 200000,
                     device: torch.device | str = "cpu") -> list[np.ndarray]:
    """(T'_i, K) float32 posteriors of whole (CPU) feature sequences (offline, batched by length),
    computed on ``device``, where ``model`` is."""
    out: list[np.ndarray | None] = [None] * len(feats)
    for idx, x, lengths in length_batches(feats, batch_frames):
        logits, out_lengths = model(x.to(device), lengths.to(device))
        post, out_lengths = model.posteriors(logits).cpu(), out_lengths.cpu()
        for j, i in enumerate(idx):
            out[i] = post[j, : int(out_lengths[j])].numpy()
    return out  # type: ignore[return-value]
