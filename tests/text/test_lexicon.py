"""The lexicon: reading, stress stripping, lookups."""

from __future__ import annotations

import pytest

from speechattn.text.lexicon import Lexicon, MissingWordError

# --------------------------------------------------------------------------- lexicon

def test_lexicon_read(lexicon_path):
    lex = Lexicon.read(lexicon_path)
    assert lex.strip_stress
    assert len(lex) == 5
    assert lex.words == ["A", "CAT", "CATS", "SAT", "THE"]
    assert lex.pronunciation("a") == ("AH",)  # the first one listed
    assert lex.pronunciations("A") == [("AH",), ("EY",)]
    assert lex.pronunciation("Cats") == ("K", "AE", "T", "S")
    assert "the" in lex and "THE" in lex and "DOG" not in lex and 3 not in lex
    assert lex.phones == ["AE", "AH", "DH", "EY", "IY", "K", "S", "T"]
    with pytest.raises(MissingWordError, match="DOG"):
        lex.pronunciation("dog")


def test_lexicon_keeps_stress_when_asked(lexicon_path):
    lex = Lexicon.read(lexicon_path, strip_stress=False)
    assert not lex.strip_stress
    assert lex.pronunciation("CAT") == ("K", "AE1", "T")
    assert lex.phones == ["AE1", "AH0", "DH", "EY1", "IY1", "K", "S", "T"]


def test_strip_stress_only_removes_one_trailing_stress_digit():
    lex = Lexicon({"X": [["AH0", "ER1", "UW2", "IH", "T", "X3", "0", "AA12"]]}, strip_stress=True)
    assert lex.pronunciation("x") == ("AH", "ER", "UW", "IH", "T", "X3", "0", "AA1")


def test_lexicon_pronunciations_that_differ_only_in_stress_merge():
    lex = Lexicon({"A": [["AH0"], ["AH1"], ["EY1"]]}, strip_stress=True)
    assert lex.pronunciations("A") == [("AH",), ("EY",)]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("A AH0\nCAT\n", r"lexicon.txt:2: word 'CAT' has no phones"),
        ("A AH0\n\n; c\nB <blank>\n", r"lexicon.txt:4: .*bad phone"),
        ("; only comments\n\n", r"lexicon.txt: no lexicon entries"),
        ("", r"lexicon.txt: no lexicon entries"),
    ],
)
def test_lexicon_malformed(tmp_path, text, match):
    path = tmp_path / "lexicon.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        Lexicon.read(path)


def test_lexicon_unreadable(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        Lexicon.read(tmp_path / "missing.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("CAF\xc9 K AE F EY\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        Lexicon.read(bad)
