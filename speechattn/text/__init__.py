"""Text for CTC models: tokenizers (characters, phones through a lexicon) stored with a model.

* :mod:`speechattn.text.tokenizers` - character and phone tokenizers, corpus encoding.
* :mod:`speechattn.text.lexicon` - pronunciation lexicons.

The package exports the public names (``__all__``) of both.
"""

from __future__ import annotations

from speechattn.text import lexicon, tokenizers
from speechattn.text.lexicon import *  # noqa: F403
from speechattn.text.tokenizers import *  # noqa: F403

__all__ = [*tokenizers.__all__, *lexicon.__all__]
