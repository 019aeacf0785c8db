"""The public API imports without training or CLI code."""

from __future__ import annotations

import subprocess
import sys


def test_model_pieces_import_without_training_or_cli():
    code = (
        "import sys\n"
        "from speechattn import FeatureExtractor, TruncatedEncoder, truncated_attention, EncoderStream\n"
        "bad = [m for m in sys.modules if m.startswith(('speechattn.training', 'speechattn.cli', 'speechattn.tasks'))]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_speechattn_does_not_load_torch():
    code = "import sys, speechattn; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_attribute():
    import pytest

    import speechattn

    with pytest.raises(AttributeError):
        speechattn.does_not_exist  # noqa: B018
