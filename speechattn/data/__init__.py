"""Data layer: utterance manifests, the corpus registry and corpus preparation.

* :mod:`speechattn.data.manifest` - :class:`Utterance`, :class:`Manifest` and
  readers/writers for Kaldi data dirs, CSV and JSON(-lines) manifests.
* :mod:`speechattn.data.corpora` - the public corpora (URLs, checksums) and the
  converters from their original archives to the prepared layout.
* :mod:`speechattn.data.prepare` - download / extract / prepare / list.
"""

from __future__ import annotations

from speechattn.data.manifest import (
    Manifest,
    ManifestError,
    Utterance,
    load_manifest,
    read_csv_manifest,
    read_json_manifest,
    read_jsonl_manifest,
    read_kaldi_dir,
    write_csv_manifest,
    write_jsonl_manifest,
)

__all__ = [
    "Manifest",
    "ManifestError",
    "Utterance",
    "load_manifest",
    "read_csv_manifest",
    "read_json_manifest",
    "read_jsonl_manifest",
    "read_kaldi_dir",
    "write_csv_manifest",
    "write_jsonl_manifest",
]
