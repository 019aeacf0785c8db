"""CTC decoding with time stamps: greedy (best path) and prefix beam search.

Both take log-probabilities over ``V`` tokens per output frame, id ``blank`` (default 0) being
the CTC blank, and give :class:`CTCHypothesis` objects: the token ids, a log-prob score and, for
each token, the span of output frames that emitted it. :func:`spans_to_times` turns spans into
seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = ["CTCHypothesis", "greedy_decode", "prefix_beam_search", "spans_to_times"]

_NEG = -math.inf


@dataclass
class CTCHypothesis:
    """A decoded token sequence.

    Attributes:
        tokens: token ids (no blanks, CTC repeats collapsed).
        score: log-prob: the sum of the best path's frame log-probs (greedy), or the prefix's
            total log-prob over all its alignments (beam search).
        spans: for each token, the first and last output frame (inclusive) that emitted it.
    """

    tokens: list[int]
    score: float
    spans: list[tuple[int, int]] = field(default_factory=list)


# --------------------------------------------------------------------------- greedy

def greedy_decode(log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0) -> list[CTCHypothesis]:
    """Best-path decoding: the most probable token of each frame, repeats collapsed, blanks removed.

    Args:
        log_probs: (batch, T, V) or (T, V) log-probs (a tensor or array).
        lengths: (batch,) valid frames of each row (default all T).
        blank: id of the blank.

    Returns:
        list[CTCHypothesis]: one per row (one for a (T, V) input).
    """
    x = torch.as_tensor(log_probs).detach()
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3:
        raise ValueError(f"log_probs must be (batch, T, V) or (T, V), got shape {tuple(x.shape)}")
    batch, frames, vocab = x.shape
    if not 0 <= blank < vocab:
        raise ValueError(f"blank id {blank} is out of range for {vocab} tokens")
    if lengths is None:
        lens = np.full(batch, frames, dtype=np.int64)
    else:
        lens = torch.as_tensor(lengths).detach().cpu().reshape(-1).numpy().astype(np.int64)
        if lens.shape[0] != batch or (lens < 0).any() or (lens > frames).any():
            raise ValueError(f"lengths must be {batch} values in [0, {frames}], got {lens.tolist()}")
    best, ids = x.max(dim=-1)
    best_np = best.float().cpu().numpy().astype(np.float64)
    ids_np = ids.cpu().numpy()
    out = []
    for b in range(batch):
        n = int(lens[b])
        seq = ids_np[b, :n]
        if n == 0:
            out.append(CTCHypothesis([], 0.0, []))
            continue
        starts = np.concatenate([[0], np.flatnonzero(seq[1:] != seq[:-1]) + 1])
        ends = np.concatenate([starts[1:], [n]]) - 1
        keep = seq[starts] != blank
        out.append(CTCHypothesis(seq[starts][keep].tolist(), float(best_np[b, :n].sum()),
                                 list(zip(starts[keep].tolist(), ends[keep].tolist()))))
    return out


# --------------------------------------------------------------------------- prefix beam search

def _lae(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) of two Python floats."""
    if a < b:
        a, b = b, a
    if b == _NEG:
        return a
    return a + math.log1p(math.exp(b - a))


class _Entry:
    """One prefix at one frame: summed log-probs of its alignments ending in blank (``pb``) or in
    its last token (``pnb``), and the best single alignment of each kind (``vb``, ``vnb``) with
    its spans: ``lb`` (all tokens' spans, a linked list ``((start, end), rest)``), and for the
    non-blank case ``start`` (first frame of the last token) plus ``lnb`` (the earlier spans)."""

    __slots__ = ("node", "pb", "pnb", "vb", "lb", "vnb", "start", "lnb")

    def __init__(self, node: int) -> None:
        self.node = node
        self.pb = self.pnb = self.vb = self.vnb = _NEG
        self.lb: tuple | None = None
        self.start = -1
        self.lnb: tuple | None = None

    def total(self) -> float:
        return _lae(self.pb, self.pnb)


def prefix_beam_search(
    log_probs: Tensor | np.ndarray,
    beam: int = 8,
    blank: int = 0,
    token_prune: float = -10.0,
    length: int | None = None,
) -> list[CTCHypothesis]:
    """CTC prefix beam search of one sequence, in log space.

    Each prefix keeps the log-probs of its alignments ending in a blank and ending in its last
    token; a repeated token only extends a prefix from its blank-ending alignments (``a a`` needs
    a blank between). After each frame the ``beam`` most probable prefixes are kept. With no
    pruning (``beam`` at least the number of prefixes, ``token_prune=-inf``) the scores are the
    exact labelling log-probs.

    Token pruning: at each frame, tokens whose log-prob is below ``token_prune`` do not start a
    new token (the blank, and a prefix's last token continuing, are always scored).

    Spans: the best single alignment of each prefix among the alignments the beam kept (a
    Viterbi path tracked beside the sums); a token spans the frames that alignment emits it in.

    Args:
        log_probs: (T, V) log-probs (a tensor or array).
        beam: prefixes kept per frame.
        blank: id of the blank.
        token_prune: log-prob threshold for starting a token at a frame.
        length: decode only the first ``length`` frames.

    Returns:
        list[CTCHypothesis]: up to ``beam`` hypotheses, best (highest total log-prob) first.
    """
    if isinstance(log_probs, Tensor):
        lp = log_probs.detach().float().cpu().numpy()
    else:
        lp = np.asarray(log_probs)
    if lp.ndim != 2:
        raise ValueError(f"log_probs must be (T, V), got shape {lp.shape}")
    frames, vocab = lp.shape
    if length is not None:
        if not 0 <= length <= frames:
            raise ValueError(f"length must be in [0, {frames}], got {length}")
        lp = lp[:length]
        frames = length
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if not 0 <= blank < vocab:
        raise ValueError(f"blank id {blank} is out of range for {vocab} tokens")
    lp = lp.astype(np.float64, copy=False)

    # tokens that may start at each frame: flat lists split by frame
    mask = lp >= token_prune
    mask[:, blank] = False
    rows, cols = np.nonzero(mask)
    bounds = np.searchsorted(rows, np.arange(frames + 1)).tolist()
    cand_tok = cols.tolist()
    cand_lp = lp[rows, cols].tolist()
    blank_lp = lp[:, blank].tolist()

    # prefixes as trie nodes (one node per label sequence): parent, last token, child index
    parent, last_tok = [-1], [-1]
    children: dict[int, int] = {}

    root = _Entry(0)
    root.pb = root.vb = 0.0
    entries = [root]
    for t in range(frames):
        row = lp[t]
        lpb = blank_lp[t]
        nxt: dict[int | tuple[int, int], _Entry] = {}
        lo, hi = bounds[t], bounds[t + 1]
        for e in entries:
            node, last = e.node, last_tok[e.node]
            ptot = _lae(e.pb, e.pnb)
            # the ended last token (if the best alignment was in it) for paths leaving it now
            ended = ((e.start, t - 1), e.lnb) if e.vnb > _NEG else None
            # blank: stay in this prefix
            s = nxt.get(node)
            if s is None:
                s = nxt[node] = _Entry(node)
            s.pb = _lae(s.pb, ptot + lpb)
            if e.vb >= e.vnb:
                v, link = e.vb + lpb, e.lb
            else:
                v, link = e.vnb + lpb, ended
            if v > s.vb:
                s.vb, s.lb = v, link
            # the last token continues
            if last >= 0:
                x = float(row[last])
                s.pnb = _lae(s.pnb, e.pnb + x)
                v = e.vnb + x
                if v > s.vnb:
                    s.vnb, s.start, s.lnb = v, e.start, e.lnb
            # a new token starts
            for k in range(lo, hi):
                c, x = cand_tok[k], cand_lp[k]
                if c == last:
                    p, v, link = e.pb + x, e.vb + x, e.lb
                else:
                    p = ptot + x
                    if e.vb >= e.vnb:
                        v, link = e.vb + x, e.lb
                    else:
                        v, link = e.vnb + x, ended
                if p == _NEG:  # impossible (a repeat right after the same token with no blank)
                    continue
                child = children.get(node * vocab + c)
                key: int | tuple[int, int] = (node, c) if child is None else child
                s = nxt.get(key)
                if s is None:
                    s = nxt[key] = _Entry(-1 if child is None else child)
                s.pnb = _lae(s.pnb, p)
                if v > s.vnb:
                    s.vnb, s.start, s.lnb = v, t, link
        ranked = sorted(((s.total(), key, s) for key, s in nxt.items()), key=lambda x: x[0], reverse=True)
        # impossible prefixes go (but one prefix always stays, even if every path is impossible)
        best = [x for x in ranked[:beam] if x[0] > _NEG] or ranked[:1]
        entries = []
        for _, key, s in best:
            if isinstance(key, tuple):  # a new prefix: add it to the trie
                s.node = len(parent)
                parent.append(key[0])
                last_tok.append(key[1])
                children[key[0] * vocab + key[1]] = s.node
            entries.append(s)

    out = []
    for e in sorted(entries, key=lambda e: e.total(), reverse=True):
        tokens = []
        node = e.node
        while node > 0:
            tokens.append(last_tok[node])
            node = parent[node]
        tokens.reverse()
        link = e.lb if e.vb >= e.vnb else ((e.start, frames - 1), e.lnb)
        spans = []
        while link is not None:
            spans.append(link[0])
            link = link[1]
        spans.reverse()
        out.append(CTCHypothesis(tokens, e.total(), spans))
    return out


# --------------------------------------------------------------------------- times

def spans_to_times(spans: Sequence[tuple[int, int]], hop: float, offset: float = 0.0) -> list[tuple[float, float]]:
    """Frame spans as ``(start, end)`` seconds: frame ``i`` covers ``[offset + i*hop, offset + (i+1)*hop)``,
    so a span runs from the start of its first frame to the end of its last (rounded to the µs)."""
    if not hop > 0:
        raise ValueError(f"hop must be > 0, got {hop}")
    return [(round(offset + a * hop, 6), round(offset + (b + 1) * hop, 6)) for a, b in spans]


def decode_log_probs(log_probs: Tensor, lengths: Tensor, beam: int = 1) -> list[CTCHypothesis]:
    """Best hypothesis of each row of (batch, T', V) log-probs: greedy or prefix beam search."""
    if beam <= 1:
        return greedy_decode(log_probs, lengths)
    return [prefix_beam_search(log_probs[i, : int(lengths[i])].float().cpu().numpy(), beam=beam)[0]
            for i in range(log_probs.shape[0])]
