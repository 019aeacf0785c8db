"""Frame labeler: global CMVN -> truncated encoder -> per-frame classifier (no training code here).

The normalisation statistics are buffers of the model (estimated on the training data and saved
with the weights), so the whole chain is frame-local up to the encoder's fixed look-ahead and
streams exactly: :meth:`FrameLabeler.stream` gives the offline logits chunk by chunk.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from speechattn.audio.cmvn import GlobalCMVN
from speechattn.nn.encoder import TruncatedEncoder

__all__ = ["FrameLabeler", "FrameHeadStream", "LabelerStream", "MODES"]

MODES = ("single", "multi")


class FrameLabeler(nn.Module):
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
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {hidden}")
        self.mode = mode
        self.num_classes = num_classes
        self.cmvn = GlobalCMVN(encoder.input_dim)
        self.encoder = encoder
        outputs = num_classes + 1 if mode == "single" else num_classes
        d = encoder.output_dim
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout)]
            d = hidden
        layers.append(nn.Linear(d, outputs))
        self.head = nn.Sequential(*layers)

    @property
    def num_outputs(self) -> int:
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
            (logits, output_lengths): (batch, time', num_outputs) and (batch,).
        """
        x = self.cmvn(features, lengths)
        hidden, out_lengths = self.encoder(x, lengths)
        return self.head(hidden), out_lengths

    def posteriors(self, logits: Tensor) -> Tensor:
        """(..., num_outputs) logits -> (..., K) class posteriors (softmax without the "none"
        column in single-label mode, sigmoid in multi-label mode), float32."""
        logits = logits.float()
        if self.mode == "single":
            return logits.softmax(-1)[..., 1:]
        return logits.sigmoid()

    def stream(self) -> "FrameHeadStream":
        """A streaming session (call in eval mode)."""
        return FrameHeadStream(self)


class FrameHeadStream:
    """Chunk-by-chunk logits of a ``cmvn -> encoder -> head`` model (:class:`FrameLabeler`,
    :class:`~speechattn.models.ctc.CTCModel`): ``push`` (batch, frames, input_dim) raw features,
    get the (batch, frames', num_outputs) logits that became computable; ``flush`` at the end.
    Concatenated they equal the offline ``model(features)[0]`` up to float rounding."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.encoder_stream = model.encoder.stream()

    @property
    def lookahead_frames(self) -> int:
        """Input frames of look-ahead before an output is produced."""
        return self.encoder_stream.lookahead_frames

    def push(self, features: Tensor) -> Tensor:
        return self.model.head(self.encoder_stream.push(self.model.cmvn(features)))

    def flush(self) -> Tensor:
        return self.model.head(self.encoder_stream.flush())


#: The frame labeler's stream (the same class serves every ``cmvn -> encoder -> head`` model).
LabelerStream = FrameHeadStream
