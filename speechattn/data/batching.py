"""Batches of whole variable-length sequences, grouped by length to limit padding."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

__all__ = ["shuffled_batches", "shuffled_steps", "bucketed_batches", "length_batches", "pad_batch", "padded_length", "shortest_first_batches"]


def shuffled_steps(count: int, batch_size: int, world: int = 1) -> int:
    """Batches per epoch of :func:`shuffled_batches`: whole global batches of ``batch_size x world``
    items (at least one)."""
    return max(1, count // (batch_size * world))


def shuffled_batches(count: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                     world: int = 1) -> Iterator[list[int]]:
    """Index batches of one epoch over ``count`` items, shuffled from ``seed`` and ``epoch``.

    Each global batch holds ``batch_size x world`` items; process ``rank`` of ``world`` gets its
    contiguous ``batch_size`` of them, so ``world`` processes see together exactly the batches that
    one process with a batch of ``batch_size x world`` sees. A corpus smaller than one global batch
    gives one batch of everything (split between the ranks).
    """
    from speechattn.utils.distributed import rank_slice

    gen = torch.Generator().manual_seed(seed * 100003 + epoch)
    order = torch.randperm(count, generator=gen).tolist()
    size = batch_size * world
    for i in range(shuffled_steps(count, batch_size, world)):
        yield rank_slice(order[i * size : (i + 1) * size] or order[:size], rank, world)


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


def bucketed_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                     pool_batches: int = 50) -> list[list[int]]:
    """Training batches of ``batch_size`` indices of similar length, in random order.

    The indices are shuffled, sorted by length within pools of ``pool_batches`` batches, cut
    into batches, and the batches shuffled: little padding, yet every epoch mixes short and long
    batches. A last incomplete batch is dropped (unless there is no complete one).
    """
    _check_batch_size(batch_size, pool_batches)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool = batch_size * pool_batches
    batches: list[list[int]] = []
    for p in range(0, len(order), pool):
        chunk = sorted(order[p : p + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    batches = [b for b in batches if len(b) == batch_size] or batches
    return [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]


def shortest_first_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Training batches of ``batch_size`` indices from the shortest sequences to the longest
    (SortaGrad, Amodei et al. 2016: a first epoch in this order helps CTC training leave its
    all-blank plateau). Sequences of equal length are in random order; a last incomplete batch
    is dropped (unless there is no complete one)."""
    _check_batch_size(batch_size)
    order = sorted(torch.randperm(len(lengths), generator=generator).tolist(), key=lambda i: lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [b for b in batches if len(b) == batch_size] or batches


def _check_batch_size(batch_size: int, pool_batches: int = 1) -> None:
    if batch_size < 1 or pool_batches < 1:
        raise ValueError(f"batch_size and pool_batches must be >= 1, got {batch_size}, {pool_batches}")
