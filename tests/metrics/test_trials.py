"""Trial lists: all pairs of a set of utterances, and trial files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechattn.metrics.trials import Trial, all_pairs_trials, read_trials


def _brute_pairs(spk: list) -> set[tuple[int, int, bool]]:
    return {(i, j, spk[i] == spk[j]) for i in range(len(spk)) for j in range(i + 1, len(spk))}


def test_all_pairs_trials_enumerates_every_unordered_pair() -> None:
    spk = ["a", "b", "a", "c", "b", "a"]
    i, j, target = all_pairs_trials(spk)
    assert i.size == 15 and target.dtype == bool and (i < j).all()
    assert set(zip(i.tolist(), j.tolist(), target.tolist(), strict=False)) == _brute_pairs(spk)
    assert target.sum() == 3 + 1  # C(3,2) for "a", 1 for "b"
    assert list(zip(i.tolist(), j.tolist(), strict=False)) == sorted(zip(i.tolist(), j.tolist(), strict=False))
    # a cap above the number of non-target pairs keeps everything
    assert all_pairs_trials(spk, max_nontarget=11)[0].size == 15


@pytest.mark.parametrize("n", [60, 2100])  # enumeration path and rejection-sampling path
def test_all_pairs_trials_cap_keeps_all_targets(n: int) -> None:
    rng = np.random.default_rng(0)
    spk = rng.integers(0, n // 3, n)
    i, j, target = all_pairs_trials(spk, max_nontarget=500, seed=3)
    n_target = sum(c * (c - 1) // 2 for c in np.unique(spk, return_counts=True)[1])
    assert target.sum() == n_target and (~target).sum() == 500
    assert (i < j).all() and np.array_equal(target, spk[i] == spk[j])
    assert len(set(zip(i.tolist(), j.tolist(), strict=False))) == i.size  # no duplicate pairs
    again = all_pairs_trials(spk, max_nontarget=500, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((i, j, target), again, strict=False))
    other = all_pairs_trials(spk, max_nontarget=500, seed=4)
    assert not np.array_equal(i[~target], other[0][~other[2]]) or not np.array_equal(j[~target], other[1][~other[2]])
    # the subsample spreads over the utterances rather than clustering at low indices
    assert np.median(np.concatenate([i[~target], j[~target]])) == pytest.approx(n / 2, rel=0.2)


def test_all_pairs_trials_torch_labels_and_bad_cap() -> None:
    i, j, target = all_pairs_trials(torch.tensor([0, 0, 1]))
    assert target.tolist() == [True, False, False]
    with pytest.raises(ValueError):
        all_pairs_trials([0, 1, 2], max_nontarget=-1)
    with pytest.raises(ValueError):
        all_pairs_trials([0, 1, 2], max_nontarget=1.5)  # type: ignore[arg-type]


def test_read_trials(tmp_path) -> None:
    path = tmp_path / "trials.txt"
    path.write_text(
        "# enroll test label\nspk1/u1 spk1/u2 target\n\nspk1/u1 spk2/u1 nontarget\n a b 1\nc\td 0\nx y TARGET\n"
    )
    assert read_trials(path) == [
        Trial("spk1/u1", "spk1/u2", True),
        Trial("spk1/u1", "spk2/u1", False),
        Trial("a", "b", True),
        Trial("c", "d", False),
        Trial("x", "y", True),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a b target\na b\n", r"trials.txt:2: expected 3 fields"),
        ("a b target\na b c d\n", r"trials.txt:2: expected 3 fields"),
        ("a b yes\n", r"trials.txt:1: label must be"),
        ("1 a b\n", r"trials.txt:1: .*VoxCeleb"),
        ("# only a comment\n\n", r"no trials"),
    ],
)
def test_read_trials_errors_name_file_and_line(tmp_path, text: str, match: str) -> None:
    path = tmp_path / "trials.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_trials(path)


def test_read_trials_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        read_trials(tmp_path / "nope.txt")
