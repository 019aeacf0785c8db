"""The shape shared by per-frame models: global CMVN -> encoder -> head (no training code here).

:class:`FrameHeadModel` is the base of the frame labeler
(:class:`~speechattn.models.labeler.FrameLabeler`) and the CTC model
(:class:`~speechattn.models.ctc.CTCModel`). The normalisation statistics are buffers of the model
(estimated on the training data and saved with the weights), so with the truncated encoder the
whole chain is frame-local up to the encoder's fixed look-ahead and streams exactly:
:meth:`FrameHeadModel.stream` gives the offline logits chunk by chunk.
"""

from __future__ import annotations

from torch import Tensor, nn

from speechattn.audio.cmvn import GlobalCMVN

__all__ = ["FrameHeadModel", "FrameHeadStream"]


class FrameHeadModel(nn.Module):
    """``features -> GlobalCMVN -> encoder -> head``, per output frame of the encoder.

    Args:
        encoder: a frame encoder, ``(batch, time, input_dim), (batch,) -> (batch, time', output_dim),
            (batch,)`` with ``input_dim``, ``output_dim`` and ``output_lengths`` (speechattn's
            :class:`~speechattn.nn.encoder.TruncatedEncoder`, or a baseline's).
        head: maps (..., output_dim) encoder outputs to (..., num_outputs) logits; its last
            module is the output ``nn.Linear``.
    """

    def __init__(self, encoder: nn.Module, head: nn.Sequential) -> None:
        super().__init__()
        self.cmvn = GlobalCMVN(int(encoder.input_dim))
        self.encoder = encoder
        self.head = head

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
        hidden, out_lengths = self.encoder(self.cmvn(features, lengths), lengths)
        return self.head(hidden), out_lengths

    def stream(self) -> "FrameHeadStream":
        """A streaming session (call in eval mode; needs an encoder with ``stream()``)."""
        if not hasattr(self.encoder, "stream"):
            raise ValueError(f"{type(self.encoder).__name__} cannot stream")
        return FrameHeadStream(self)


class FrameHeadStream:
    """Chunk-by-chunk logits of a :class:`FrameHeadModel`: ``push`` (batch, frames, input_dim) raw
    features, get the (batch, frames', num_outputs) logits that became computable; ``flush`` at
    the end. Concatenated they equal the offline ``model(features)[0]`` up to float rounding."""

    def __init__(self, model: FrameHeadModel) -> None:
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
