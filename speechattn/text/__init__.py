"""Text for CTC models: tokenizers (characters, phones through a lexicon) stored with a model.

See :mod:`speechattn.text.tokenizers`.
"""

from __future__ import annotations

from speechattn.text.tokenizers import (
    BLANK,
    WORD_BOUNDARY,
    CharTokenizer,
    EncodedCorpus,
    Lexicon,
    MissingWordError,
    PhoneTokenizer,
    Tokenizer,
    UnknownTokenError,
    encode_corpus,
    tokenizer_from_dict,
)

__all__ = [
    "BLANK",
    "WORD_BOUNDARY",
    "CharTokenizer",
    "EncodedCorpus",
    "Lexicon",
    "MissingWordError",
    "PhoneTokenizer",
    "Tokenizer",
    "UnknownTokenError",
    "encode_corpus",
    "tokenizer_from_dict",
]
