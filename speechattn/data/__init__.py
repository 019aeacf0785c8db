"""Data layer: utterance manifests, the corpus registry and corpus preparation.

* :mod:`speechattn.data.manifest` - :class:`Utterance`, :class:`Manifest`, :class:`ManifestError`.
* :mod:`speechattn.data.kaldi` - Kaldi data dirs (:func:`read_kaldi_dir`).
* :mod:`speechattn.data.manifest_io` - CSV and JSON(-lines) manifest readers/writers, and
  :func:`load_manifest`, which picks the reader from the path.
* :mod:`speechattn.data.corpora` - the public corpora (URLs, checksums) and the
  converters from their original archives to the prepared layout.
* :mod:`speechattn.data.fetch` - verified, resumable downloads and safe archive extraction.
* :mod:`speechattn.data.prepare` - prepare / list the corpora under the data root.

The package exports the public names (``__all__``) of the manifest modules.
"""

from __future__ import annotations

from speechattn.data import kaldi, manifest, manifest_io
from speechattn.data.kaldi import *  # noqa: F403
from speechattn.data.manifest import *  # noqa: F403
from speechattn.data.manifest_io import *  # noqa: F403

__all__ = [*manifest.__all__, *kaldi.__all__, *manifest_io.__all__]
