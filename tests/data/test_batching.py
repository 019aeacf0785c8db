import pytest
import torch

from speechattn.data.batching import (
    bucketed_batches,
    length_batches,
    pad_batch,
    padded_length,
    shortest_first_batches,
)


def test_pad_batch_rounds_time_up_and_keeps_values():
    seqs = [torch.randn(5, 3), torch.randn(11, 3), torch.randn(1, 3)]
    out = pad_batch(seqs, multiple=8)
    assert out.shape == (3, 16, 3)
    for row, s in zip(out, seqs):
        assert torch.equal(row[: s.shape[0]], s)
        assert torch.count_nonzero(row[s.shape[0]:]) == 0


def test_pad_batch_multiple_one_equals_pad_sequence():
    seqs = [torch.randn(7), torch.randn(4)]
    assert torch.equal(pad_batch(seqs), torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True))
    assert pad_batch([torch.randn(32, 2)], multiple=32).shape == (1, 32, 2)  # already a multiple


def test_pad_batch_padding_value_and_bad_args():
    out = pad_batch([torch.zeros(2, dtype=torch.long)], multiple=4, padding_value=-100)
    assert out.tolist() == [[0, 0, -100, -100]]
    with pytest.raises(ValueError, match="multiple"):
        pad_batch([torch.zeros(2)], multiple=0)
    with pytest.raises(ValueError, match="at least one"):
        pad_batch([])


def test_length_batches_cover_every_sequence_once():
    feats = [torch.randn(n, 2) for n in (9, 3, 5, 20, 4)]
    seen = []
    for idx, x, lengths in length_batches(feats, max_frames=20):
        assert x.shape[0] == len(idx) and x.shape[1] == int(lengths.max())
        assert x.shape[0] * x.shape[1] <= max(20, int(lengths.min()))
        seen += idx
    assert sorted(seen) == list(range(5))


def test_padded_length_rounds_up_to_the_multiple():
    assert [padded_length(n, 32) for n in (1, 32, 33, 64)] == [32, 32, 64, 64]
    assert padded_length(7) == 7
    with pytest.raises(ValueError, match="multiple"):
        padded_length(5, 0)


def _lengths(n: int = 203, seed: int = 0) -> list[int]:
    return torch.randint(20, 60, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_bucketed_batches_are_full_disjoint_similar_and_shuffled():
    lengths = _lengths()
    batches = bucketed_batches(lengths, 8, torch.Generator().manual_seed(1), pool_batches=5)
    assert all(len(b) == 8 for b in batches) and len(batches) == 203 // 8
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == len(flat) == 200  # each index at most once; the 3 left over dropped
    # within a pool, batches are cut from a sorted run: each batch spans little of the length range
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spans) / len(spans) < 0.3 * (max(lengths) - min(lengths))
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima != sorted(maxima)  # not in length order
    again = bucketed_batches(lengths, 8, torch.Generator().manual_seed(1), pool_batches=5)
    other = bucketed_batches(lengths, 8, torch.Generator().manual_seed(2), pool_batches=5)
    assert again == batches and other != batches


def test_shortest_first_batches_go_from_short_to_long():
    lengths = _lengths()
    batches = shortest_first_batches(lengths, 8, torch.Generator().manual_seed(1))
    assert all(len(b) == 8 for b in batches) and len(batches) == 203 // 8
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == 200
    assert [lengths[i] for i in flat] == sorted(lengths)[:200]  # the 3 longest are dropped
    # equal lengths are in random order: another generator, same lengths, other indices
    other = shortest_first_batches(lengths, 8, torch.Generator().manual_seed(2))
    assert [lengths[i] for b in other for i in b] == [lengths[i] for i in flat] and other != batches
    assert shortest_first_batches([5, 3], 8, torch.Generator()) == [[1, 0]]  # fewer than a batch: kept


def test_batch_orders_reject_bad_sizes():
    with pytest.raises(ValueError, match="batch_size"):
        bucketed_batches([1, 2], 0, torch.Generator())
    with pytest.raises(ValueError, match="pool_batches"):
        bucketed_batches([1, 2], 2, torch.Generator(), pool_batches=0)
    with pytest.raises(ValueError, match="batch_size"):
        shortest_first_batches([1, 2], 0, torch.Generator())
