"""A tiny CTC run on real speechocean762 audio, shared by the task and CLI tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RECIPE = Path(__file__).parent.parent / "recipes" / "asr.yaml"

#: Overrides that turn recipes/asr.yaml into a seconds-long run on 60 utterances.
TINY_CTC = [
    "model.encoder.d_model=32", "model.encoder.num_heads=2", "model.encoder.num_layers=2",
    "model.encoder.ffn_dim=64", "model.encoder.subsampling_channels=8", "data.max_train_utterances=60",
    "data.max_dev_utterances=12", "data.speed_perturb=[1.0]", "train.batch_size=8", "train.max_epochs=2",
    "train.eval_every=1", "train.max_minutes=null", "train.precision=fp32", "train.warmup_steps=2",
]

_CACHE: dict[tuple[str, ...], Any] = {}


def tiny_ctc_run(tmp_path_factory: Any, extra: tuple[str, ...] = ()) -> tuple[Path, dict[str, Any]]:
    """(run_dir, summary) of recipes/asr.yaml shrunk by :data:`TINY_CTC` (+ ``extra`` overrides)."""
    if extra not in _CACHE:
        from speechattn.tasks import train_recipe

        run_dir = tmp_path_factory.mktemp("ctc") / "run"
        summary = train_recipe(RECIPE, [*TINY_CTC, *extra], run_dir=run_dir, progress=False)
        _CACHE[extra] = (run_dir, summary)
    return _CACHE[extra]


def small_kaldi_dir(speechocean_dir: Path, split: str, out: Path, count: int,
                    replace: dict[int, str] | None = None) -> Path:
    """The first ``count`` utterances of ``speechocean762/SPLIT`` as a Kaldi dir in ``out``
    (absolute audio paths); ``replace`` maps line numbers to new transcripts."""
    src = speechocean_dir / split
    out.mkdir(parents=True, exist_ok=True)
    lines = (src / "text").read_text().splitlines()[:count]
    for i, words in (replace or {}).items():
        lines[i] = f"{lines[i].split()[0]} {words}"
    keep = {line.split()[0] for line in lines}
    (out / "text").write_text("\n".join(lines) + "\n")
    rows = [r.split() for r in (src / "wav.scp").read_text().splitlines() if r.split()[0] in keep]
    (out / "wav.scp").write_text("".join(f"{u} {speechocean_dir / p}\n" for u, p in rows))
    rows = [r for r in (src / "utt2spk").read_text().splitlines() if r.split()[0] in keep]
    (out / "utt2spk").write_text("\n".join(rows) + "\n")
    return out
