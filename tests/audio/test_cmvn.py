"""speechattn.audio.cmvn: per-utterance and global mean/variance normalisation."""

from __future__ import annotations

import json

import pytest
import torch

from speechattn.audio import CMVNStats, GlobalCMVN, utterance_cmvn


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(4, 50, 6) features with per-dim offsets/scales, junk in the padding, lengths (4,)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([50, 31, 2, 17])
    scale = torch.tensor([1.0, 2.0, 0.5, 10.0, 3.0, 0.1])
    offset = torch.tensor([5.0, -3.0, 0.0, 100.0, 1.0, -7.0])
    feats = torch.randn(4, 50, 6, generator=gen) * scale + offset
    return feats, lengths


def _valid(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return torch.cat([feats[i, :n] for i, n in enumerate(lengths.tolist())])


# --------------------------------------------------------------------------- per utterance


def test_utterance_cmvn_zero_mean_unit_var_on_valid_frames() -> None:
    feats, lengths = _batch()
    out = utterance_cmvn(feats, lengths)
    assert out.shape == feats.shape and out.dtype == feats.dtype
    for i, n in enumerate(lengths.tolist()):
        valid = out[i, :n].double()
        torch.testing.assert_close(valid.mean(0), torch.zeros(6, dtype=torch.float64), rtol=0, atol=1e-5)
        torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-4)
        assert torch.all(out[i, n:] == 0)


def test_utterance_cmvn_ignores_padding_content() -> None:
    feats, lengths = _batch()
    other = feats.clone()
    for i, n in enumerate(lengths.tolist()):
        other[i, n:] = 1e6  # different junk in the padding
        alone = utterance_cmvn(feats[i : i + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(utterance_cmvn(feats, lengths)[i, :n], alone[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(utterance_cmvn(other, lengths), utterance_cmvn(feats, lengths), rtol=0, atol=0)


def test_utterance_cmvn_mean_only_and_degenerate_cases() -> None:
    feats, lengths = _batch()
    centred = utterance_cmvn(feats, lengths, norm_vars=False)
    for i, n in enumerate(lengths.tolist()):
        expected = feats[i, :n] - feats[i, :n].double().mean(0).float()
        torch.testing.assert_close(centred[i, :n], expected, rtol=0, atol=1e-4)
    const = torch.full((2, 5, 3), 4.0)
    out = utterance_cmvn(const, torch.tensor([5, 0]))  # constant dims and an empty utterance
    assert torch.isfinite(out).all() and torch.all(out == 0)
    # no lengths: every frame is valid
    torch.testing.assert_close(utterance_cmvn(feats), utterance_cmvn(feats, torch.full((4,), 50)), rtol=0, atol=0)
    with pytest.raises(ValueError):
        utterance_cmvn(feats[0], lengths)
    with pytest.raises(ValueError):
        utterance_cmvn(feats, torch.tensor([51, 1, 1, 1]))


# --------------------------------------------------------------------------- stats


def test_stats_match_direct_computation_and_skip_padding() -> None:
    feats, lengths = _batch()
    stats = CMVNStats()
    stats.update(feats[:2], lengths[:2]).update(feats[2:], lengths[2:])
    valid = _valid(feats, lengths).double()
    assert stats.count == int(lengths.sum()) and stats.dim == 6
    torch.testing.assert_close(stats.mean, valid.mean(0), rtol=0, atol=1e-10)
    torch.testing.assert_close(stats.std, valid.std(0, unbiased=False), rtol=1e-9, atol=1e-9)
    # 2-D (frames, dim) updates accumulate the same numbers
    flat = CMVNStats(6)
    for i, n in enumerate(lengths.tolist()):
        flat.update(feats[i, :n])
    torch.testing.assert_close(flat.sum, stats.sum, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(flat.sum_sq, stats.sum_sq, rtol=1e-12, atol=1e-6)


def test_stats_dict_roundtrip_merge_and_errors() -> None:
    feats, lengths = _batch(1)
    a = CMVNStats().update(feats[:2], lengths[:2])
    b = CMVNStats().update(feats[2:], lengths[2:])
    both = CMVNStats().update(feats, lengths)
    restored = CMVNStats.from_dict(json.loads(json.dumps(a.to_dict())))
    assert restored.count == a.count
    torch.testing.assert_close(restored.mean, a.mean, rtol=0, atol=0)
    torch.testing.assert_close(restored.std, a.std, rtol=0, atol=0)
    merged = restored.merge(b)
    torch.testing.assert_close(merged.mean, both.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(merged.std, both.std, rtol=1e-9, atol=1e-12)

    with pytest.raises(ValueError, match="empty"):
        CMVNStats(3).mean
    with pytest.raises(ValueError):
        CMVNStats(6).update(torch.zeros(4, 5))
    with pytest.raises(ValueError):
        CMVNStats().update(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError):
        CMVNStats.from_dict({"dim": 2, "count": 1, "sum": [1.0], "sum_sq": [1.0, 1.0]})
    with pytest.raises(ValueError):
        CMVNStats(2).merge(CMVNStats().update(torch.zeros(1, 3)))


def test_stats_std_floor() -> None:
    stats = CMVNStats().update(torch.full((10, 2), 3.0))
    torch.testing.assert_close(stats.std, torch.full((2,), 1e-5, dtype=torch.float64), rtol=0, atol=0)


# --------------------------------------------------------------------------- global


def test_global_cmvn_normalises_and_keeps_padding_zero() -> None:
    feats, lengths = _batch(2)
    cmvn = GlobalCMVN.from_stats(CMVNStats().update(feats, lengths))
    out = cmvn(feats, lengths)
    valid = _valid(out, lengths).double()
    torch.testing.assert_close(valid.mean(0), torch.zeros(6, dtype=torch.float64), rtol=0, atol=1e-5)
    torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-4)
    for i, n in enumerate(lengths.tolist()):
        assert torch.all(out[i, n:] == 0)
    # without lengths it is a plain affine map on every frame
    torch.testing.assert_close(cmvn(feats), (feats - cmvn.mean) / cmvn.std, rtol=0, atol=0)
    mean_only = GlobalCMVN.from_stats(CMVNStats().update(feats, lengths), norm_vars=False)
    torch.testing.assert_close(mean_only(feats), feats - mean_only.mean, rtol=0, atol=0)


def test_global_cmvn_state_dict_roundtrip() -> None:
    feats, lengths = _batch(3)
    cmvn = GlobalCMVN.from_stats(CMVNStats().update(feats, lengths))
    state = cmvn.state_dict()
    assert set(state) == {"mean", "std"}
    fresh = GlobalCMVN(6)
    assert not torch.equal(fresh(feats), cmvn(feats))
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(feats, lengths), cmvn(feats, lengths), rtol=0, atol=0)
    model = torch.nn.Sequential(cmvn, torch.nn.Linear(6, 2))
    assert {"0.mean", "0.std"} <= set(model.state_dict())


def test_global_cmvn_is_frame_local() -> None:
    feats, lengths = _batch(4)
    cmvn = GlobalCMVN.from_stats(CMVNStats().update(feats, lengths))
    whole = cmvn(feats[0])
    chunks = torch.cat([cmvn(c) for c in feats[0].split(7)])
    torch.testing.assert_close(chunks, whole, rtol=0, atol=0)


def test_global_cmvn_bad_args() -> None:
    with pytest.raises(ValueError):
        GlobalCMVN(0)
    with pytest.raises(ValueError):
        GlobalCMVN(3, mean=torch.zeros(4))
    with pytest.raises(ValueError):
        GlobalCMVN(2, std=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError):
        GlobalCMVN(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError):
        GlobalCMVN(3)(torch.zeros(5, 3), torch.tensor([5]))
