"""Edit operations and error-rate accumulation."""

from __future__ import annotations

import math
import random

import pytest

from speechattn.metrics import ErrorRate, edit_ops
from speechattn.metrics.errors import score_transcripts
from speechattn.text import CharTokenizer, PhoneTokenizer


def _levenshtein(ref, hyp) -> int:
    """Plain O(n*m) reference implementation."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i]
        for j, h in enumerate(hyp, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize(
    ("ref", "hyp", "expected"),
    [
        ("a b c d", "a x c d e", (1, 0, 1)),
        ("a b c d", "a b c d", (0, 0, 0)),
        ("a b c d", "b c d", (0, 1, 0)),
        ("a b c d", "a b", (0, 2, 0)),
        ("a b", "x a b y z", (0, 0, 3)),
        ("a b c", "x y z", (3, 0, 0)),
        ("the cat sat", "the the cat sat", (0, 0, 1)),
        ("a a a", "a", (0, 2, 0)),
    ],
)
def test_known_examples(ref, hyp, expected):
    assert edit_ops(ref.split(), hyp.split()) == expected


def test_empty_sides():
    assert edit_ops("a b c".split(), []) == (0, 3, 0)
    assert edit_ops([], "a b".split()) == (0, 0, 2)
    assert edit_ops([], []) == (0, 0, 0)


def test_strings_compare_characters_and_any_hashable_tokens_work():
    assert edit_ops("kitten", "sitting") == (2, 0, 1)
    assert edit_ops([1, 2, 3], [1, 3]) == (0, 1, 0)
    assert edit_ops([("AH",), ("B",)], [("AH",), ("K",)]) == (1, 0, 0)


def test_minimal_and_consistent_on_random_sequences():
    rng = random.Random(0)
    for _ in range(300):
        ref = [rng.choice("abc") for _ in range(rng.randint(0, 12))]
        hyp = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        s, d, i = edit_ops(ref, hyp)
        assert min(s, d, i) >= 0
        assert s + d + i == _levenshtein(ref, hyp), (ref, hyp)
        # the same number of reference and hypothesis tokens is matched
        assert len(ref) - d == len(hyp) - i
        assert s <= min(len(ref) - d, len(hyp) - i)


def test_error_rate_accumulates_over_utterances():
    er = ErrorRate()
    assert er.update("a b c d".split(), "a x c d e".split()) is er
    er.update("a b".split(), [])
    er.update([], ["z"])
    assert (er.substitutions, er.deletions, er.insertions) == (1, 2, 2)
    assert er.errors == 5 and er.ref_len == 6 and er.utterances == 3
    assert er.rate == pytest.approx(5 / 6)
    d = er.as_dict("per")
    assert set(d) == {"per", "per_sub", "per_del", "per_ins"}
    assert d["per"] == pytest.approx(5 / 6)
    assert d["per_sub"] == pytest.approx(1 / 6)
    assert d["per_del"] == pytest.approx(2 / 6)
    assert d["per_ins"] == pytest.approx(2 / 6)
    assert d["per_sub"] + d["per_del"] + d["per_ins"] == pytest.approx(d["per"])


def test_rate_can_exceed_one_with_insertions():
    er = ErrorRate().update(["a"], ["a", "b", "c"])
    assert er.rate == pytest.approx(2.0)


def test_rate_without_reference_tokens_is_nan():
    er = ErrorRate()
    assert math.isnan(er.rate)
    er.update([], ["x"])
    assert er.insertions == 1 and math.isnan(er.rate)
    assert all(math.isnan(v) for v in er.as_dict("wer").values())


def test_score_transcripts_phones_and_chars():
    lex_phones = PhoneTokenizer(["AH", "B", "K"], None)
    ab = [lex_phones.tokens.index("AH"), lex_phones.tokens.index("B")]
    k = lex_phones.tokens.index("K")
    m = score_transcripts(lex_phones, [ab, ab], [ab, [ab[0], k, ab[1], k]])
    assert m["per"] == pytest.approx(2 / 4)  # two insertions over four reference phones
    assert "wer" not in m
    chars = CharTokenizer.build(["AB C"])
    ref = chars.encode("AB C")
    m = score_transcripts(chars, [ref], [chars.encode("AB")])
    assert m["cer"] == pytest.approx(1 / 3)  # the boundary is not a character
    assert m["wer"] == pytest.approx(1 / 2)
