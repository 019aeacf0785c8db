"""CTC greedy decoding, prefix beam search (checked against brute force) and span times."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from speechattn.decoding import CTCHypothesis, greedy_decode, prefix_beam_search, spans_to_times

NO_PRUNE = -math.inf


def _collapse(path, blank=0):
    """Labelling and per-token frame spans of one alignment."""
    tokens, spans = [], []
    prev = blank
    for t, c in enumerate(path):
        if c != blank:
            if c == prev:
                spans[-1] = (spans[-1][0], t)
            else:
                tokens.append(c)
                spans.append((t, t))
        prev = c
    return tuple(tokens), spans


def _brute_force(probs, blank=0):
    """{labelling: total probability} and {labelling: spans of its best alignment}."""
    T, V = probs.shape
    total: dict[tuple, float] = defaultdict(float)
    best: dict[tuple, tuple[float, list]] = {}
    for path in itertools.product(range(V), repeat=T):
        p = float(np.prod(probs[np.arange(T), list(path)]))
        lab, spans = _collapse(path, blank)
        total[lab] += p
        if lab not in best or p > best[lab][0]:
            best[lab] = (p, spans)
    return dict(total), {k: v[1] for k, v in best.items()}


def _random_log_probs(rng, T, V, sharpness=1.0):
    x = torch.tensor(rng.normal(0, sharpness, (T, V)))
    return torch.log_softmax(x, -1).numpy()


def _frames(seq, V, p_best=0.9):
    """(T, V) log-probs whose best token at frame t is seq[t] with probability p_best."""
    probs = np.full((len(seq), V), (1 - p_best) / (V - 1))
    probs[np.arange(len(seq)), seq] = p_best
    return np.log(probs)


# --------------------------------------------------------------------------- greedy

def test_greedy_collapses_runs_and_gives_spans():
    lp = _frames([1, 1, 0, 2, 2, 2, 0, 0, 1], V=3)
    (hyp,) = greedy_decode(torch.from_numpy(lp))
    assert isinstance(hyp, CTCHypothesis)
    assert hyp.tokens == [1, 2, 1]
    assert hyp.spans == [(0, 1), (3, 5), (8, 8)]
    assert hyp.score == pytest.approx(9 * math.log(0.9))


def test_greedy_repeats_need_a_blank_between():
    assert greedy_decode(_frames([1, 1, 1], V=2))[0].tokens == [1]
    hyp = greedy_decode(_frames([1, 0, 1], V=2))[0]
    assert hyp.tokens == [1, 1] and hyp.spans == [(0, 0), (2, 2)]


def test_greedy_all_blank_is_empty():
    hyp = greedy_decode(_frames([0, 0, 0, 0], V=4))[0]
    assert hyp.tokens == [] and hyp.spans == []
    assert hyp.score == pytest.approx(4 * math.log(0.9))


def test_greedy_batch_respects_lengths():
    a = _frames([1, 0, 2, 2, 0], V=3)
    b = _frames([2, 2, 1, 1, 1], V=3)  # only the first two frames are valid
    batch = torch.from_numpy(np.stack([a, b]))
    full, cut = greedy_decode(batch, torch.tensor([5, 2]))
    assert full.tokens == [1, 2] and full.spans == [(0, 0), (2, 3)]
    assert cut.tokens == [2] and cut.spans == [(0, 1)]
    assert cut.score == pytest.approx(2 * math.log(0.9))
    empty = greedy_decode(batch, [5, 0])[1]
    assert empty.tokens == [] and empty.score == 0.0
    # without lengths every frame counts
    assert greedy_decode(batch)[1].tokens == [2, 1]


def test_greedy_other_blank_id():
    lp = _frames([2, 1, 1, 2, 0], V=3)
    assert greedy_decode(lp, blank=2)[0].tokens == [1, 0]


def test_greedy_rejects_bad_input():
    with pytest.raises(ValueError, match="batch, T, V"):
        greedy_decode(torch.zeros(3))
    with pytest.raises(ValueError, match="lengths"):
        greedy_decode(torch.zeros(2, 4, 3), torch.tensor([4, 5]))
    with pytest.raises(ValueError, match="lengths"):
        greedy_decode(torch.zeros(2, 4, 3), torch.tensor([4]))
    with pytest.raises(ValueError, match="blank"):
        greedy_decode(torch.zeros(4, 3), blank=3)


# --------------------------------------------------------------------------- beam search

def test_beam_finds_the_most_probable_labelling_where_greedy_does_not():
    # each frame: blank 0.6, "a" 0.4. Best path: blank blank (0.36), labelling "": 0.36;
    # labelling "a": aa + a- + -a = 0.16 + 0.24 + 0.24 = 0.64.
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    greedy = greedy_decode(lp)[0]
    assert greedy.tokens == [] and greedy.score == pytest.approx(math.log(0.36))
    hyps = prefix_beam_search(lp, beam=4, token_prune=NO_PRUNE)
    assert [h.tokens for h in hyps] == [[1], []]
    assert hyps[0].score == pytest.approx(math.log(0.64))
    assert hyps[1].score == pytest.approx(math.log(0.36))
    # best alignments: "a -" and "- a" tie at 0.24; either spans one frame
    assert hyps[0].spans in ([(0, 0)], [(1, 1)])


@pytest.mark.parametrize("seed", range(6))
def test_beam_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    lp = _random_log_probs(rng, T=4, V=3, sharpness=1.5)
    total, best_spans = _brute_force(np.exp(lp))
    assert sum(total.values()) == pytest.approx(1.0)
    hyps = prefix_beam_search(lp, beam=len(total) + 5, token_prune=NO_PRUNE)
    # every labelling found once, with its exact probability, best first
    assert len(hyps) == len(total)
    assert {tuple(h.tokens) for h in hyps} == set(total)
    for h in hyps:
        assert h.score == pytest.approx(math.log(total[tuple(h.tokens)]), abs=1e-5)
        assert h.spans == best_spans[tuple(h.tokens)]
    assert tuple(hyps[0].tokens) == max(total, key=total.get)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_beam_matches_torch_ctc_loss_on_a_longer_sequence():
    rng = np.random.default_rng(7)
    lp = _random_log_probs(rng, T=12, V=4, sharpness=2.0)
    hyps = prefix_beam_search(lp, beam=6)
    lpt = torch.from_numpy(lp).unsqueeze(1)
    for h in hyps:
        if not h.tokens:
            continue
        nll = torch.nn.functional.ctc_loss(lpt, torch.tensor([h.tokens]), torch.tensor([12]),
                                           torch.tensor([len(h.tokens)]), reduction="sum")
        # a pruned beam can only lose alignments: its score is at most the exact log-prob
        assert h.score <= -float(nll) + 1e-9
    # with no pruning the top score is exact
    exact = prefix_beam_search(lp, beam=5000, token_prune=NO_PRUNE)[0]
    nll = torch.nn.functional.ctc_loss(lpt, torch.tensor([exact.tokens]), torch.tensor([12]),
                                       torch.tensor([len(exact.tokens)]), reduction="sum")
    assert exact.score == pytest.approx(-float(nll), abs=1e-6)


def test_beam_repeats_need_a_blank_between():
    hyp = prefix_beam_search(_frames([1, 0, 1], V=2, p_best=0.99), beam=4)[0]
    assert hyp.tokens == [1, 1] and hyp.spans == [(0, 0), (2, 2)]
    hyp = prefix_beam_search(_frames([1, 1, 1], V=2, p_best=0.99), beam=4)[0]
    assert hyp.tokens == [1] and hyp.spans == [(0, 2)]


def test_beam_all_blank_and_no_frames():
    hyp = prefix_beam_search(_frames([0] * 6, V=5, p_best=0.99), beam=4)[0]
    assert hyp.tokens == [] and hyp.spans == []
    hyps = prefix_beam_search(np.zeros((0, 3)), beam=4)
    assert len(hyps) == 1 and hyps[0].tokens == [] and hyps[0].score == 0.0


def test_beam_agrees_with_greedy_on_peaky_output():
    rng = np.random.default_rng(3)
    seq = np.where(rng.random(3000) < 0.6, 0, rng.integers(1, 30, 3000))
    lp = _frames(seq, V=30, p_best=0.999)
    g = greedy_decode(lp)[0]
    hyps = prefix_beam_search(lp, beam=4)
    assert hyps[0].tokens == g.tokens
    assert hyps[0].spans == g.spans
    assert len(hyps) == 4 and len({tuple(h.tokens) for h in hyps}) == 4  # distinct prefixes
    assert hyps[0].score >= g.score


def test_beam_token_prune_blocks_unlikely_tokens():
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    hyps = prefix_beam_search(lp, beam=4, token_prune=math.log(0.5))
    assert [h.tokens for h in hyps] == [[]]


def test_beam_other_blank_id_length_and_tensor_input():
    rng = np.random.default_rng(1)
    lp = _random_log_probs(rng, T=10, V=4)
    perm = [3, 1, 2, 0]  # swap the blank (0) with token 3
    ref = prefix_beam_search(lp, beam=8)
    moved = prefix_beam_search(lp[:, perm], beam=8, blank=3)
    assert [[perm[c] for c in h.tokens] for h in moved] == [h.tokens for h in ref]
    assert [h.score for h in moved] == pytest.approx([h.score for h in ref])
    cut = prefix_beam_search(torch.from_numpy(lp), beam=8, length=6)
    assert [h.tokens for h in cut] == [h.tokens for h in prefix_beam_search(lp[:6], beam=8)]


def test_beam_spans_are_ordered_and_inside_the_input():
    rng = np.random.default_rng(5)
    lp = _random_log_probs(rng, T=200, V=6, sharpness=3.0)
    for h in prefix_beam_search(lp, beam=8):
        assert len(h.spans) == len(h.tokens)
        ends = [-1] + [b for _, b in h.spans]
        for (a, b), prev_end in zip(h.spans, ends):
            assert prev_end < a <= b < 200


def test_beam_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(T, V\)"):
        prefix_beam_search(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="beam"):
        prefix_beam_search(np.zeros((3, 4)), beam=0)
    with pytest.raises(ValueError, match="blank"):
        prefix_beam_search(np.zeros((3, 4)), blank=4)
    with pytest.raises(ValueError, match="length"):
        prefix_beam_search(np.zeros((3, 4)), length=4)


# --------------------------------------------------------------------------- times

def test_spans_to_times():
    assert spans_to_times([(0, 1), (3, 5)], hop=0.04, offset=0.01) == [(0.01, 0.09), (0.13, 0.25)]
    assert spans_to_times([(2, 2)], hop=0.02) == [(0.04, 0.06)]
    assert spans_to_times([], hop=0.04) == []
    with pytest.raises(ValueError, match="hop"):
        spans_to_times([(0, 0)], hop=0.0)
