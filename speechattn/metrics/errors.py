"""Error rates of token sequences (word, character and phone error rates).

:func:`edit_ops` counts the substitutions, deletions and insertions of a minimal edit
(Levenshtein) alignment of a hypothesis to a reference; :class:`ErrorRate` sums them over a
corpus: ``rate = (S + D + I) / reference tokens``. Pass sequences of tokens (``text.split()``
for words); a ``str`` is compared character by character.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from speechattn.text.tokenizers import Tokenizer

__all__ = ["ErrorRate", "edit_ops"]


def edit_ops(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of a minimal edit of ``hyp`` into ``ref``.

    Ties between minimal alignments are broken locally towards a match or substitution, then a
    deletion, then an insertion. Memory is O(len(hyp)): one row of the edit matrix at a time.
    """
    n, m = len(ref), len(hyp)
    if n == 0 or m == 0:
        return 0, n, m
    vocab: dict[Hashable, int] = {}
    r = np.array([vocab.setdefault(x, len(vocab)) for x in ref], dtype=np.int64)
    h = np.array([vocab.setdefault(x, len(vocab)) for x in hyp], dtype=np.int64)
    cols = np.arange(m + 1)
    # counts of the best alignment of ref[:i] to hyp[:j], j = 0..m (row i = 0: j insertions)
    sub, dele, ins = np.zeros(m + 1, np.int64), np.zeros(m + 1, np.int64), cols.copy()
    for i in range(n):
        cost = sub + dele + ins
        neq = (h != r[i]).astype(np.int64)
        # deletion of ref[i] (from the row above, same j) or match/substitution (from j - 1)
        diag = cost[:-1] + neq
        use_diag = np.concatenate([[False], diag <= cost[1:] + 1])
        src = np.where(use_diag, cols - 1, cols)
        t_sub = sub[src] + np.where(use_diag, np.concatenate([[0], neq]), 0)
        t_del = dele[src] + ~use_diag
        t_ins = ins[src]
        # insertions along the row: best[j] = min_k<=j tmp[k] + (j - k), latest k on ties
        a = t_sub + t_del + t_ins - cols
        run_min = np.minimum.accumulate(a)
        k = np.maximum.accumulate(np.where(a == run_min, cols, 0))
        sub, dele, ins = t_sub[k], t_del[k], t_ins[k] + (cols - k)
    return int(sub[m]), int(dele[m]), int(ins[m])


@dataclass
class ErrorRate:
    """Edit counts summed over utterances; ``rate`` is ``errors / ref_len``."""

    errors: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    ref_len: int = 0
    utterances: int = 0

    def update(self, ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> ErrorRate:
        """Add one utterance's reference and hypothesis token sequences."""
        s, d, i = edit_ops(ref, hyp)
        self.substitutions += s
        self.deletions += d
        self.insertions += i
        self.errors += s + d + i
        self.ref_len += len(ref)
        self.utterances += 1
        return self

    @property
    def rate(self) -> float:
        """``errors / ref_len``: NaN when there are no reference tokens (undefined)."""
        return self.errors / self.ref_len if self.ref_len else math.nan

    def as_dict(self, prefix: str) -> dict[str, float]:
        """Rates for logging: ``{prefix: rate, prefix_sub, prefix_del, prefix_ins}`` (fractions of
        the reference tokens; NaN without reference tokens)."""
        def frac(x: int) -> float:
            return x / self.ref_len if self.ref_len else math.nan

        return {prefix: self.rate, f"{prefix}_sub": frac(self.substitutions), f"{prefix}_del": frac(self.deletions),
                f"{prefix}_ins": frac(self.insertions)}


def score_transcripts(tokenizer: Tokenizer, refs: Sequence[Sequence[int]], hyps: Sequence[Sequence[int]]
                      ) -> dict[str, float]:
    """Token error rate (``per`` for phones, ``cer`` for characters, word boundaries excluded)
    and, when the tokens spell words, ``wer``."""
    name = "cer" if tokenizer.kind == "chars" else "per"
    tokens, words = ErrorRate(), ErrorRate()
    for ref, hyp in zip(refs, hyps):
        r_text, h_text = tokenizer.decode(ref), tokenizer.decode(hyp)
        if tokenizer.predicts_words:
            tokens.update(list(r_text.replace(" ", "")), list(h_text.replace(" ", "")))
            words.update(r_text.split(), h_text.split())
        else:
            tokens.update(r_text.split(), h_text.split())
    out = tokens.as_dict(name)
    if tokenizer.predicts_words:
        out.update(words.as_dict("wer"))
    return out
