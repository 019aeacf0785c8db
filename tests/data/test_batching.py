import pytest
import torch

from speechattn.data.batching import length_batches, pad_batch, padded_length


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
