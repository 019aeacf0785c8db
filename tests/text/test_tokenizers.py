"""Character and phone tokenizers and corpus encoding (the lexicon file: conftest.lexicon_path)."""

from __future__ import annotations

import json

import pytest

from speechattn.text.lexicon import Lexicon, MissingWordError
from speechattn.text.tokenizers import (
    BLANK,
    WORD_BOUNDARY,
    CharTokenizer,
    EncodedCorpus,
    PhoneTokenizer,
    UnknownTokenError,
    encode_corpus,
    tokenizer_from_dict,
)


def _roundtrip(tok):
    return tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))


# --------------------------------------------------------------------------- characters

def test_char_build_sorted_set_with_boundary():
    tok = CharTokenizer.build(["HELLO  WORLD", " IT'S "])
    assert tok.tokens == [BLANK, "'", "D", "E", "H", "I", "L", "O", "R", "S", "T", "W", WORD_BOUNDARY]
    assert len(tok) == 13
    assert tok.kind == "chars" and tok.predicts_words


def test_char_boundary_present_even_for_single_word_training_text():
    tok = CharTokenizer.build(["AB", "BA"])
    assert tok.tokens == [BLANK, "A", "B", WORD_BOUNDARY]
    assert tok.decode(tok.encode("AB BA")) == "AB BA"


def test_char_encode_collapses_whitespace_and_decodes_words():
    tok = CharTokenizer.build(["AB C"])
    a, b, c, bar = (tok.tokens.index(x) for x in "ABC|")
    assert tok.encode("  AB \t  C \n") == [a, b, bar, c]
    assert tok.encode("AB C") == tok.encode(" AB   C")
    assert all(i >= 1 for i in tok.encode("CAB BAC"))
    assert tok.encode("") == []
    assert tok.decode([a, b, bar, c]) == "AB C"
    # blanks ignored; boundaries at the ends or in runs give no empty words
    assert tok.decode([0, bar, a, 0, bar, bar, 0, c, bar, 0]) == "A C"
    assert tok.decode([]) == "" and tok.decode([0, 0]) == ""
    assert tok.token_strings([0, a, bar]) == [BLANK, "A", WORD_BOUNDARY]


def test_char_is_case_sensitive_and_names_unknown_characters():
    tok = CharTokenizer.build(["ABC"])
    with pytest.raises(UnknownTokenError) as info:
        tok.encode("AbX é")
    assert isinstance(info.value, ValueError)
    assert info.value.characters == ["X", "b", "é"]
    assert "'X'" in str(info.value) and "'é'" in str(info.value)


def test_char_literal_boundary_is_rejected():
    with pytest.raises(ValueError, match="word-boundary"):
        CharTokenizer.build(["A|B"])
    tok = CharTokenizer.build(["A B"])
    with pytest.raises(UnknownTokenError, match=r"'\|'"):
        tok.encode("A|B")


def test_char_bad_inputs():
    with pytest.raises(ValueError, match="no characters"):
        CharTokenizer.build(["", "   "])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["AB"])
    with pytest.raises(ValueError, match="duplicate"):
        CharTokenizer(["A", "A"])
    tok = CharTokenizer.build(["AB"])
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([len(tok)])
    with pytest.raises(ValueError, match="out of range"):
        tok.token_strings([-1])


def test_char_roundtrip_keeps_ids():
    tok = CharTokenizer.build(["THE CAT", "SAT"])
    back = _roundtrip(tok)
    assert isinstance(back, CharTokenizer) and back == tok
    assert back.tokens == tok.tokens
    assert back.encode("THE CAT SAT") == tok.encode("THE CAT SAT")


# --------------------------------------------------------------------------- phones

def test_phone_tokenizer_encodes_first_pronunciations(lexicon_path):
    lex = Lexicon.read(lexicon_path)
    tok = PhoneTokenizer.from_lexicon(lex)
    assert tok.kind == "phones" and not tok.predicts_words
    assert tok.tokens == [BLANK, *lex.phones]
    ids = tok.encode("the  cat SAT")
    assert tok.token_strings(ids) == ["DH", "AH", "K", "AE", "T", "S", "AE", "T"]
    assert min(ids) >= 1
    assert tok.decode([0, *ids, 0]) == "DH AH K AE T S AE T"
    assert tok.encode("") == []


def test_phone_tokenizer_names_all_missing_words(lexicon_path):
    tok = PhoneTokenizer.from_lexicon(Lexicon.read(lexicon_path))
    with pytest.raises(MissingWordError) as info:
        tok.encode("the dog ate the dog food")
    assert isinstance(info.value, ValueError)
    assert info.value.words == ["DOG", "ATE", "FOOD"]
    assert "DOG, ATE, FOOD" in str(info.value)


def test_phone_roundtrip_stores_phones_not_lexicon(lexicon_path):
    tok = PhoneTokenizer.from_lexicon(Lexicon.read(lexicon_path))
    d = tok.to_dict()
    assert d == {"kind": "phones", "tokens": tok.tokens, "strip_stress": True}
    back = _roundtrip(tok)
    assert isinstance(back, PhoneTokenizer) and back == tok
    assert back.lexicon is None and back.strip_stress
    ids = tok.encode("THE CAT")
    assert back.decode(ids) == "DH AH K AE T"
    with pytest.raises(ValueError, match="no lexicon"):
        back.encode("THE CAT")
    assert back.with_lexicon(Lexicon.read(lexicon_path)).encode("THE CAT") == ids


def test_phone_tokenizer_keeps_given_order_and_checks_the_lexicon(lexicon_path):
    tok = PhoneTokenizer(["T", "K", "AE"], None)
    assert tok.tokens == [BLANK, "T", "K", "AE"] and not tok.strip_stress
    lex = Lexicon.read(lexicon_path)
    with pytest.raises(ValueError, match="not in the phone set: AH, DH"):
        PhoneTokenizer(["T", "K", "AE", "S", "EY", "IY"], lex)
    with pytest.raises(ValueError, match="strip_stress"):
        PhoneTokenizer(lex.phones, lex, strip_stress=False)
    with pytest.raises(ValueError, match="reserved"):
        PhoneTokenizer([BLANK, "A"])
    with pytest.raises(ValueError, match="at least one"):
        PhoneTokenizer([])


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"kind": "words", "tokens": [BLANK, "A"]}, "unknown kind 'words'"),
        ({"tokens": [BLANK, "A"]}, "unknown kind None"),
        ({"kind": "chars"}, "'tokens' must be a list"),
        ({"kind": "chars", "tokens": [BLANK, 1]}, "'tokens' must be a list"),
        ({"kind": "chars", "tokens": ["A", BLANK]}, "first token must be the blank"),
        ({"kind": "chars", "tokens": []}, "first token must be the blank"),
        ({"kind": "chars", "tokens": [BLANK, "A", "A"]}, "duplicate tokens: A"),
        ({"kind": "chars", "tokens": [BLANK, "AB"]}, "single characters"),
        ({"kind": "phones", "tokens": [BLANK, "AH"], "strip_stress": "yes"}, "strip_stress"),
        ([BLANK, "A"], "must be a mapping"),
    ],
)
def test_tokenizer_from_dict_rejects_malformed(d, match):
    with pytest.raises(ValueError, match=match):
        tokenizer_from_dict(d)


# --------------------------------------------------------------------------- corpora

def test_encode_corpus_skips_and_summarises(lexicon_path):
    tok = PhoneTokenizer.from_lexicon(Lexicon.read(lexicon_path))
    texts = {
        "u1": "THE CAT SAT",
        "u2": "THE FOO SAT",
        "u3": "FOO BAR FOO",
        "u4": "   ",
        "u5": "A CAT",
    }
    enc = encode_corpus(tok, texts)
    assert isinstance(enc, EncodedCorpus)
    assert list(enc.ids) == ["u1", "u5"]
    assert enc.ids["u5"] == tok.encode("A CAT")
    assert set(enc.skipped) == {"u2", "u3", "u4"}
    assert "FOO" in enc.skipped["u2"] and enc.skipped["u4"] == "empty transcript"
    assert enc.missing_words == {"FOO": 3, "BAR": 1}
    assert enc.total == 5
    assert enc.summary() == ("skipped 3 of 5 utterances: words missing from the lexicon: FOO (3), BAR (1); "
                             "empty transcripts: 1")
    assert enc.summary(top=1) == ("skipped 3 of 5 utterances: words missing from the lexicon: FOO (3), "
                                  "... (1 more); empty transcripts: 1")


def test_encode_corpus_counts_unknown_characters():
    tok = CharTokenizer.build(["AB"])
    enc = encode_corpus(tok, {"a": "AB BA", "b": "AXX", "c": "B"})
    assert list(enc.ids) == ["a", "c"] and list(enc.skipped) == ["b"]
    assert enc.unknown_characters == {"X": 2}
    assert enc.summary() == "skipped 1 of 3 utterances: unknown characters: 'X' (2)"


def test_encode_corpus_nothing_skipped():
    tok = CharTokenizer.build(["AB"])
    enc = encode_corpus(tok, {"a": "AB"})
    assert enc.summary() == "skipped 0 of 1 utterances" and not enc.skipped


def test_encode_corpus_fails_when_everything_is_skipped(lexicon_path):
    tok = PhoneTokenizer.from_lexicon(Lexicon.read(lexicon_path))
    with pytest.raises(ValueError, match=r"skipped 2 of 2 utterances: words missing from the lexicon: DOG \(2\)"):
        encode_corpus(tok, {"a": "DOG", "b": "THE DOG"})
    with pytest.raises(ValueError, match="no transcripts"):
        encode_corpus(tok, {})


def test_encode_corpus_propagates_other_errors():
    with pytest.raises(ValueError, match="no lexicon"):
        encode_corpus(PhoneTokenizer(["AH"]), {"a": "A"})


# --------------------------------------------------------------------------- real data

def _kaldi_text(path):
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        utt, _, text = line.partition(" ")
        out[utt] = text
    return out


@pytest.mark.corpus
def test_speechocean762_lexicon_covers_the_transcripts(speechocean_dir):
    lex = Lexicon.read(speechocean_dir / "lexicon.txt")
    assert len(lex.phones) == 39  # ARPAbet without stress
    assert "AH" in lex.phones and "AH0" not in lex.phones
    tok = PhoneTokenizer.from_lexicon(lex)
    for split in ("train", "dev"):
        texts = _kaldi_text(speechocean_dir / split / "text")
        enc = encode_corpus(tok, texts)
        assert enc.total == len(texts) > 0
        assert not enc.missing_words, enc.summary()
    train = _kaldi_text(speechocean_dir / "train" / "text")
    chars = CharTokenizer.build(train.values())
    assert _roundtrip(chars) == chars
    dev = encode_corpus(chars, _kaldi_text(speechocean_dir / "dev" / "text"))
    assert not dev.skipped, dev.summary()
    utt, text = next(iter(train.items()))
    assert chars.decode(chars.encode(text)) == " ".join(text.split())
