"""Batches of whole variable-length sequences, grouped by length to limit padding."""

from __future__ import annotations

from typing import Iterator, Sequence

from torch import Tensor, nn

__all__ = ["length_batches"]


def length_batches(feats: Sequence[Tensor], max_frames: int) -> Iterator[tuple[list[int], Tensor, Tensor]]:
    """Yield ``(indices, padded, lengths)`` covering every sequence once.

    Sequences (each (frames, dim)) are sorted by length and packed while ``batch size x longest``
    stays within ``max_frames`` (a longer sequence gets a batch of its own).

    Returns, per batch: indices into ``feats``, (batch, longest, dim) zero-padded features and
    (batch,) lengths.
    """
    import torch

    order = sorted(range(len(feats)), key=lambda i: feats[i].shape[0])
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and feats[order[stop]].shape[0] * (stop - start + 1) <= max(
            max_frames, feats[order[start]].shape[0]
        ):
            stop += 1
        idx = order[start:stop]
        lengths = torch.tensor([feats[i].shape[0] for i in idx])
        yield idx, nn.utils.rnn.pad_sequence([feats[i] for i in idx], batch_first=True), lengths
        start = stop
