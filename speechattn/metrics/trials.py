"""Speaker-verification trial lists: every pair of a set of utterances, or read from a file."""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from speechattn.metrics.verification import to_numpy

__all__ = ["Trial", "all_pairs_trials", "read_trials"]

# up to this many pairs, all_pairs_trials enumerates instead of sampling
_ENUMERATE_PAIRS = 2_000_000


def all_pairs_trials(
    speaker_labels: Sequence[Hashable] | np.ndarray | torch.Tensor,
    max_nontarget: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trials from every unordered pair ``i < j`` of a set of utterances.

    Args:
        speaker_labels: speaker of each utterance, length `n` (strings, ints, ...).
        max_nontarget (int or None, optional): cap on the number of **non-target** pairs.
            ``None`` (or a cap at least the number of non-target pairs) keeps every pair;
            otherwise a uniform random subset of ``max_nontarget`` non-target pairs is drawn
            (without replacement, without enumerating all ``n(n-1)/2`` pairs) with
            ``numpy.random.default_rng(seed)``. **All target pairs are always kept.**
            (Default: ``None``)
        seed (int, optional): seed of the non-target subsample; same inputs and seed give
            the same trials. (Default: ``0``)

    Returns:
        (i, j, target): int64, int64 and bool arrays of shape `(n_trials,)`, sorted by
        ``(i, j)``, with ``i < j`` and ``target[k] = speaker_labels[i[k]] == speaker_labels[j[k]]``.
    """
    spk = to_numpy(speaker_labels) if isinstance(speaker_labels, torch.Tensor) else speaker_labels
    if isinstance(spk, np.ndarray) and spk.ndim != 1:
        raise ValueError(f"speaker_labels must be 1-D, got shape {spk.shape}")
    if max_nontarget is not None and (
        isinstance(max_nontarget, bool) or not isinstance(max_nontarget, (int, np.integer)) or max_nontarget < 0
    ):
        raise ValueError(f"max_nontarget must be a non-negative int or None, got {max_nontarget!r}")
    ids: dict[Hashable, int] = {}
    codes = np.fromiter(
        (ids.setdefault(s.item() if isinstance(s, np.generic) else s, len(ids)) for s in spk), dtype=np.int64
    )
    n = codes.size
    total = n * (n - 1) // 2

    # target pairs, speaker by speaker
    ti, tj = [], []
    for c in np.unique(codes):
        members = np.flatnonzero(codes == c)
        if members.size > 1:
            a, b = np.triu_indices(members.size, k=1)
            ti.append(members[a])
            tj.append(members[b])
    ti_arr = np.concatenate(ti) if ti else np.empty(0, np.int64)
    tj_arr = np.concatenate(tj) if tj else np.empty(0, np.int64)
    n_nontarget = total - ti_arr.size

    if max_nontarget is None or max_nontarget >= n_nontarget:
        i, j = np.triu_indices(n, k=1)
        i, j = i.astype(np.int64), j.astype(np.int64)
        return i, j, codes[i] == codes[j]

    rng = np.random.default_rng(seed)
    if total <= _ENUMERATE_PAIRS or 2 * max_nontarget > n_nontarget:
        # small problem or dense subsample: enumerate the non-target pairs and pick a subset
        i, j = np.triu_indices(n, k=1)
        keep = codes[i] != codes[j]
        keys = i[keep].astype(np.int64) * n + j[keep]
    else:
        # rejection sampling of distinct non-target pairs: ordered pairs (a != b) drawn
        # uniformly are uniform over unordered pairs; keep the distinct non-target ones
        keys = np.empty(0, np.int64)
        while keys.size < max_nontarget:
            draw = max(2 * (max_nontarget - keys.size), 1024)
            a = rng.integers(0, n, size=draw)
            b = rng.integers(0, n - 1, size=draw)
            b = b + (b >= a)
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            nontarget = codes[lo] != codes[hi]
            keys = np.unique(np.concatenate([keys, lo[nontarget] * n + hi[nontarget]]))
    keys = np.sort(rng.choice(keys, size=max_nontarget, replace=False))
    ni, nj = keys // n, keys % n

    i = np.concatenate([ti_arr, ni])
    j = np.concatenate([tj_arr, nj])
    target = np.concatenate([np.ones(ti_arr.size, bool), np.zeros(ni.size, bool)])
    order = np.lexsort((j, i))
    return i[order], j[order], target[order]


class Trial(NamedTuple):
    """One line of a trial list."""

    enroll: str
    test: str
    target: bool


_TRIAL_LABELS = {"target": True, "1": True, "nontarget": False, "0": False}


def read_trials(path: str | os.PathLike[str]) -> list[Trial]:
    """Read a trial list: one ``enroll_id test_id label`` per line.

    ``label`` is ``target``/``nontarget`` or ``1``/``0`` (case-insensitive). Fields are
    separated by whitespace; blank lines and lines starting with ``#`` are skipped.

    Args:
        path (str or PathLike): the trial file.

    Returns:
        list[Trial]: ``(enroll, test, target)`` in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed line (the message gives ``file:line``), or no trials at all.
    """
    trials: list[Trial] = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) != 3:
                raise ValueError(
                    f"{path}:{lineno}: expected 3 fields 'enroll_id test_id target|nontarget|1|0', "
                    f"got {len(fields)}: {line!r}"
                )
            label = fields[2].lower()
            if label not in _TRIAL_LABELS:
                hint = ""
                if fields[0].lower() in _TRIAL_LABELS:
                    hint = " (this looks like the VoxCeleb 'label enroll test' order; put the label last)"
                raise ValueError(
                    f"{path}:{lineno}: label must be target, nontarget, 1 or 0, got {fields[2]!r}{hint}"
                )
            trials.append(Trial(fields[0], fields[1], _TRIAL_LABELS[label]))
    if not trials:
        raise ValueError(f"{path}: no trials found")
    return trials
