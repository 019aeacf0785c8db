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


def test_every_public_name_resolves_and_inference_loads_no_training_code():
    """Each name of ``speechattn.__all__`` (the README's ``from speechattn import ...``) imports,
    and using trained runs (:mod:`speechattn.inference`) loads no training code."""
    code = (
        "import sys, speechattn\n"
        "missing = [n for n in speechattn.__all__ if getattr(speechattn, n, None) is None]\n"
        "bad = [m for m in sys.modules if m.startswith(('speechattn.training', 'speechattn.tasks', 'speechattn.cli'))]\n"
        "print(missing, bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"


def test_old_inference_module_paths_still_work_with_a_deprecation_warning():
    import importlib

    import pytest

    from speechattn.inference import Labeler, Transcriber

    for old, cls in (("speechattn.labeler", Labeler), ("speechattn.transcriber", Transcriber)):
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match="speechattn.inference"):
            module = importlib.import_module(old)
        assert getattr(module, cls.__name__) is cls
