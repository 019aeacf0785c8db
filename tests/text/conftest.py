"""A small lexicon file shared by the lexicon and tokenizer tests."""

from __future__ import annotations

import pytest

LEXICON = """\
;; a comment
# another comment
A\tAH0
A\tEY1
CAT  K AE1 T

cats K AE1 T S
SAT\tS AE1 T
THE\tDH AH0
THE\tDH IY1
"""


@pytest.fixture()
def lexicon_path(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text(LEXICON, encoding="utf-8")
    return path
