"""Pronunciation lexicons: words to phone sequences, for phone tokenizers.

A :class:`Lexicon` maps each word (case-insensitive) to its pronunciations, first listed
first; :meth:`Lexicon.read` reads the usual ``WORD PH1 PH2 ...`` text format. Looking up a word
that is not there raises :class:`MissingWordError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = ["Lexicon", "MissingWordError"]

PathLike = str | os.PathLike[str]

#: Token string of the CTC blank, always id 0 (see :mod:`speechattn.text.tokenizers`, which
#: exports it): defined here because no phone may be called so.
BLANK = "<blank>"

_STRESS = re.compile(r"^(.+?)[012]$")


class MissingWordError(ValueError):
    """Text holds words that are not in the lexicon (``words``: them, upper case, in text order)."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = list(dict.fromkeys(words))
        super().__init__(f"words missing from the lexicon: {', '.join(self.words)}")


class Lexicon:
    """Pronunciations of words: ``WORD -> [(PH1, PH2, ...), ...]``, first listed first.

    Lookup is case-insensitive (words are stored upper case).

    Args:
        entries: word -> its pronunciations (each a sequence of phones), in preference order.
        strip_stress: remove ARPAbet stress digits (a trailing 0, 1 or 2: ``AH0`` -> ``AH``).
    """

    def __init__(self, entries: Mapping[str, Iterable[Sequence[str]]], strip_stress: bool = False) -> None:
        self.strip_stress = bool(strip_stress)
        self._prons: dict[str, list[tuple[str, ...]]] = {}
        for word, prons in entries.items():
            key = word.upper()
            if not key or any(c.isspace() for c in key):
                raise ValueError(f"lexicon words must be non-empty without blanks, got {word!r}")
            for pron in prons:
                self._add(key, pron)
            if key not in self._prons:
                raise ValueError(f"word {word!r} has no pronunciation")

    def _add(self, word: str, pron: Sequence[str]) -> None:
        phones = tuple(_strip(p) if self.strip_stress else p for p in pron)
        if not phones:
            raise ValueError(f"word {word!r} has an empty pronunciation")
        for p in phones:
            if not p or any(c.isspace() for c in p) or p == BLANK:
                raise ValueError(f"word {word!r} has a bad phone {p!r}")
        prons = self._prons.setdefault(word, [])
        if phones not in prons:
            prons.append(phones)

    @classmethod
    def read(cls, path: PathLike, strip_stress: bool = True) -> Lexicon:
        """Read a lexicon file: lines ``WORD<tab or spaces>PH1 PH2 ...``.

        A word may have several lines (pronunciations; the first is used for training targets).
        Blank lines and lines starting with ``;`` or ``#`` are ignored.

        Raises:
            ValueError: an unreadable file, a malformed line (``path:line: problem``), or no entries.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{p}: not UTF-8 text") from None
        except OSError as exc:
            raise ValueError(f"{p}: cannot read ({exc.strerror or exc})") from None
        lex = cls({}, strip_stress=strip_stress)
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line[0] in ";#":
                continue
            fields = line.split()
            if len(fields) < 2:
                raise ValueError(f"{p}:{lineno}: word {fields[0]!r} has no phones (expected 'WORD PH1 PH2 ...')")
            try:
                lex._add(fields[0].upper(), fields[1:])
            except ValueError as exc:
                raise ValueError(f"{p}:{lineno}: {exc}") from None
        if not lex._prons:
            raise ValueError(f"{p}: no lexicon entries")
        return lex

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.upper() in self._prons

    def __len__(self) -> int:
        """Number of words."""
        return len(self._prons)

    @property
    def words(self) -> list[str]:
        """The words (upper case), in file order."""
        return list(self._prons)

    @property
    def phones(self) -> list[str]:
        """Sorted set of the phones of all pronunciations."""
        return sorted({p for prons in self._prons.values() for pron in prons for p in pron})

    def pronunciation(self, word: str) -> tuple[str, ...]:
        """The first pronunciation of ``word`` (any case).

        Raises:
            MissingWordError: the word is not in the lexicon.
        """
        prons = self._prons.get(word.upper())
        if prons is None:
            raise MissingWordError([word.upper()])
        return prons[0]

    def pronunciations(self, word: str) -> list[tuple[str, ...]]:
        """All pronunciations of ``word``, first listed first (MissingWordError if absent)."""
        self.pronunciation(word)
        return list(self._prons[word.upper()])


def _strip(phone: str) -> str:
    m = _STRESS.match(phone)
    return m.group(1) if m else phone
