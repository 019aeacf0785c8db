"""Tokenizers for CTC models: characters or phones (through a pronunciation lexicon).

Every tokenizer maps text to token ids for CTC training and back; id 0 is always the CTC blank
(token string ``"<blank>"``), so real tokens are ``1 .. len(tokenizer) - 1``. A tokenizer is
stored with a trained model as a JSON-serialisable dict (:meth:`Tokenizer.to_dict`) and rebuilt
with :func:`tokenizer_from_dict`.

* :class:`CharTokenizer` - the characters of the training transcripts; the space between words
  is the token ``"|"``, so decoded text has words and a word error rate makes sense.
* :class:`PhoneTokenizer` - phones: a transcript is the concatenation of the first
  pronunciations of its words in a :class:`~speechattn.text.lexicon.Lexicon`. Decoded text is
  space-separated phones (no word boundaries).

Transcripts that cannot be encoded (an unknown character, a word missing from the lexicon, no
words at all) are skipped, not fatal, by :func:`encode_corpus`, which says what it skipped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# BLANK (the CTC blank's token string, always id 0) is defined with the lexicon, which must
# refuse it as a phone; it is exported from here.
from speechattn.text.lexicon import BLANK, Lexicon, MissingWordError

__all__ = [
    "BLANK",
    "WORD_BOUNDARY",
    "CharTokenizer",
    "EncodedCorpus",
    "PhoneTokenizer",
    "Tokenizer",
    "UnknownTokenError",
    "encode_corpus",
    "tokenizer_from_dict",
]

#: Word-boundary token of character tokenizers (the space between words).
WORD_BOUNDARY = "|"


class UnknownTokenError(ValueError):
    """Text holds characters that are not in the tokenizer (``characters``: them, sorted)."""

    def __init__(self, characters: Iterable[str]) -> None:
        self.characters = sorted(set(characters))
        super().__init__(f"characters not in the tokenizer: {', '.join(repr(c) for c in self.characters)}")


# --------------------------------------------------------------------------- base class

class Tokenizer(ABC):
    """Token ids of text for CTC: id 0 is the blank, ``tokens[i]`` is the string of id ``i``.

    Subclasses set :attr:`kind` (the key in :meth:`to_dict`) and :attr:`predicts_words`.
    """

    kind: str = ""
    #: True when :meth:`decode` output has word boundaries (a word error rate makes sense).
    predicts_words: bool = False

    def __init__(self, symbols: Sequence[str]) -> None:
        symbols = list(symbols)
        for s in symbols:
            if not isinstance(s, str) or not s or any(c.isspace() for c in s):
                raise ValueError(f"tokens must be non-empty strings without blanks, got {s!r}")
        if BLANK in symbols:
            raise ValueError(f"{BLANK!r} is reserved for the CTC blank (id 0); leave it out of the token list")
        dup = sorted(s for s, n in Counter(symbols).items() if n > 1)
        if dup:
            raise ValueError(f"duplicate tokens: {', '.join(dup)}")
        if not symbols:
            raise ValueError("a tokenizer needs at least one token besides the blank")
        self._tokens = [BLANK, *symbols]
        self._index = {s: i for i, s in enumerate(self._tokens)}

    @property
    def tokens(self) -> list[str]:
        """All token strings by id, the blank first (a copy)."""
        return list(self._tokens)

    def __len__(self) -> int:
        """Vocabulary size, the blank included (the CTC output dimension)."""
        return len(self._tokens)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} tokens)"

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids (all >= 1) of a transcript."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (blanks ignored; repeats are not collapsed, CTC decoding does that)."""

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        """The token string of each id (the blank is ``"<blank>"``)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self._tokens):
                raise ValueError(f"token id {i} is out of range for a vocabulary of {len(self._tokens)}")
            out.append(self._tokens[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description; :func:`tokenizer_from_dict` rebuilds the tokenizer."""
        return {"kind": self.kind, "tokens": list(self._tokens)}

    def _non_blank(self, ids: Sequence[int]) -> list[str]:
        return [s for s in self.token_strings(ids) if s != BLANK]


# --------------------------------------------------------------------------- characters

class CharTokenizer(Tokenizer):
    """Characters, with ``"|"`` for the space between words. Case-sensitive; text is not
    normalised beyond whitespace (runs collapse to one boundary, leading/trailing ones dropped).

    Args:
        chars: the characters (one each; ``"|"`` for the word boundary), in id order from 1.
    """

    kind = "chars"
    predicts_words = True

    def __init__(self, chars: Sequence[str]) -> None:
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"character tokens must be single characters, got {bad[0]!r}")
        super().__init__(chars)

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharTokenizer:
        """The sorted set of characters of training transcripts, with ``"|"`` for the space
        (always present, so multi-word text can be encoded even if training had none)."""
        chars: set[str] = {WORD_BOUNDARY}
        for text in texts:
            if WORD_BOUNDARY in text:
                raise ValueError(f"transcripts cannot contain {WORD_BOUNDARY!r} (the word-boundary token): {text!r}")
            chars.update(_normalise(text))
        if chars == {WORD_BOUNDARY}:
            raise ValueError("no characters in the transcripts")
        return cls(sorted(chars))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``.

        Raises:
            UnknownTokenError: characters not in the tokenizer (a literal ``"|"`` is one).
        """
        chars = _normalise(text)
        unknown = {c for c in chars if c not in self._index}
        if WORD_BOUNDARY in text:
            unknown.add(WORD_BOUNDARY)
        if unknown:
            raise UnknownTokenError(unknown)
        return [self._index[c] for c in chars]

    def decode(self, ids: Sequence[int]) -> str:
        """Words separated by single spaces (boundaries at the ends or in runs are dropped)."""
        return " ".join(w for w in "".join(self._non_blank(ids)).split(WORD_BOUNDARY) if w)

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> CharTokenizer:
        return cls(d["tokens"][1:])


def _normalise(text: str) -> str:
    """Words joined by the boundary token: ``"  a  b "`` -> ``"a|b"``."""
    return WORD_BOUNDARY.join(text.split())


# --------------------------------------------------------------------------- phones

class PhoneTokenizer(Tokenizer):
    """Phones; a transcript is the concatenation of its words' first pronunciations.

    Args:
        phones: the phone set, in id order from 1.
        lexicon: needed by :meth:`encode` only; a tokenizer loaded with a model has none
            (decoding needs the phones alone). Its phones must all be in ``phones``.
        strip_stress: whether the phones are stress-stripped (recorded in :meth:`to_dict`);
            default the lexicon's setting, or False without a lexicon.
    """

    kind = "phones"
    predicts_words = False

    def __init__(self, phones: Sequence[str], lexicon: Lexicon | None = None, strip_stress: bool | None = None) -> None:
        super().__init__(phones)
        if lexicon is not None:
            if strip_stress is not None and bool(strip_stress) != lexicon.strip_stress:
                raise ValueError(f"strip_stress={strip_stress} disagrees with the lexicon's {lexicon.strip_stress}")
            strip_stress = lexicon.strip_stress
            extra = [p for p in lexicon.phones if p not in self._index]
            if extra:
                raise ValueError(f"lexicon phones not in the phone set: {', '.join(extra)}")
        self.lexicon = lexicon
        self.strip_stress = bool(strip_stress)

    @classmethod
    def from_lexicon(cls, lexicon: Lexicon) -> PhoneTokenizer:
        """The lexicon's phones (sorted) with the lexicon attached."""
        return cls(lexicon.phones, lexicon)

    def with_lexicon(self, lexicon: Lexicon) -> PhoneTokenizer:
        """The same phone ids with ``lexicon`` attached (to encode with a loaded model's tokenizer)."""
        return PhoneTokenizer(self._tokens[1:], lexicon)

    def encode(self, text: str) -> list[int]:
        """Token ids of the first pronunciations of the words of ``text``.

        Raises:
            MissingWordError: words not in the lexicon (all of them are named).
            ValueError: the tokenizer has no lexicon.
        """
        if self.lexicon is None:
            raise ValueError("this PhoneTokenizer has no lexicon to encode words with (use with_lexicon)")
        words = text.split()
        missing = [w.upper() for w in words if w not in self.lexicon]
        if missing:
            raise MissingWordError(missing)
        return [self._index[p] for w in words for p in self.lexicon.pronunciation(w)]

    def decode(self, ids: Sequence[int]) -> str:
        """Space-separated phones."""
        return " ".join(self._non_blank(ids))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "strip_stress": self.strip_stress}

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> PhoneTokenizer:
        strip = d.get("strip_stress", False)
        if not isinstance(strip, bool):
            raise ValueError(f"tokenizer dict: 'strip_stress' must be true or false, got {strip!r}")
        return cls(d["tokens"][1:], None, strip_stress=strip)


_KINDS: dict[str, type[CharTokenizer] | type[PhoneTokenizer]] = {"chars": CharTokenizer, "phones": PhoneTokenizer}


def tokenizer_from_dict(d: Mapping[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_dict` (token ids are kept).

    Raises:
        ValueError: not a mapping, an unknown ``kind``, or a bad ``tokens`` list.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"tokenizer dict must be a mapping, got {type(d).__name__}")
    kind = d.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"tokenizer dict: unknown kind {kind!r} (expected one of {', '.join(_KINDS)})")
    tokens = d.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise ValueError("tokenizer dict: 'tokens' must be a list of strings")
    if not tokens or tokens[0] != BLANK:
        raise ValueError(f"tokenizer dict: the first token must be the blank {BLANK!r}")
    try:
        return _KINDS[kind]._from_dict(d)
    except ValueError as exc:
        raise ValueError(f"tokenizer dict: {exc}") from None


# --------------------------------------------------------------------------- corpora

@dataclass
class EncodedCorpus:
    """Token ids of the utterances that could be encoded, and why the others were skipped.

    ``missing_words`` and ``unknown_characters`` count occurrences in the skipped transcripts.
    """

    ids: dict[str, list[int]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    missing_words: Counter[str] = field(default_factory=Counter)
    unknown_characters: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Utterances seen (encoded + skipped)."""
        return len(self.ids) + len(self.skipped)

    def summary(self, top: int = 10) -> str:
        """One line: how many utterances were skipped and why (the ``top`` commonest words/characters)."""
        parts = []
        if self.missing_words:
            parts.append(f"words missing from the lexicon: {_top(self.missing_words, top, str)}")
        if self.unknown_characters:
            parts.append(f"unknown characters: {_top(self.unknown_characters, top, repr)}")
        empty = sum(1 for r in self.skipped.values() if r == _EMPTY)
        if empty:
            parts.append(f"{_EMPTY}s: {empty}")
        line = f"skipped {len(self.skipped)} of {self.total} utterances"
        return f"{line}: {'; '.join(parts)}" if parts else line


_EMPTY = "empty transcript"


def _top(counts: Counter[str], top: int, fmt: Any) -> str:
    items = counts.most_common()
    out = ", ".join(f"{fmt(k)} ({n})" for k, n in items[:top])
    return out + (f", ... ({len(items) - top} more)" if len(items) > top else "")


def encode_corpus(tokenizer: Tokenizer, texts: Mapping[str, str]) -> EncodedCorpus:
    """Encode transcripts (utterance id -> text), skipping those that cannot be encoded.

    Skipped: empty transcripts, words missing from the lexicon, unknown characters. Other
    errors (a phone tokenizer without a lexicon) propagate.

    Raises:
        ValueError: no transcripts, or every one was skipped (the message is the summary).
    """
    if not texts:
        raise ValueError("no transcripts to encode")
    out = EncodedCorpus()
    for utt, text in texts.items():
        if not text or not text.split():
            out.skipped[utt] = _EMPTY
            continue
        try:
            out.ids[utt] = tokenizer.encode(text)
        except MissingWordError as exc:
            out.skipped[utt] = str(exc)
            missing = set(exc.words)
            out.missing_words.update(w.upper() for w in text.split() if w.upper() in missing)
        except UnknownTokenError as exc:
            out.skipped[utt] = str(exc)
            unknown = set(exc.characters)
            out.unknown_characters.update(c for c in text if c in unknown)
    if not out.ids:
        raise ValueError(out.summary())
    return out
