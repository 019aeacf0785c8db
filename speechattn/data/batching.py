"""Batches of whole variable-length sequences, grouped by length to limit padding."""

from __future__ import annotations

from typing import Iterator, Sequence

from torch import Tensor, nn

__all__ = ["length_batches", "pad_batch", "padded_length"]


def padded_length(longest: int, multiple: int = 1) -> int:
    """``longest`` rounded up to a multiple of ``multiple``: the time length of a :func:`pad_batch`."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    return -(-longest // multiple) * multiple


def pad_batch(seqs: Sequence[Tensor], multiple: int = 1, padding_value: float = 0.0) -> Tensor:
    """Stack (frames, ...) sequences into a (batch, time, ...) zero-padded tensor whose ``time``
    is the longest length rounded up to a multiple of ``multiple``.

    Rounding up keeps the number of distinct batch shapes small: on CPU, kernels set up per
    shape (and freshly sized buffers) then get reused, which makes training steps of whole
    variable-length utterances faster (see RESULTS.md, CTC section) for a few extra padded frames.
    """
    if not seqs:
        raise ValueError("pad_batch needs at least one sequence")
    time = padded_length(max(s.shape[0] for s in seqs), multiple)
    out = seqs[0].new_full((len(seqs), time, *seqs[0].shape[1:]), padding_value)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out


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
