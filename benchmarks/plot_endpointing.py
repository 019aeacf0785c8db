"""Plot the energy endpointing that labels the voice-activity simulation, on real utterances.

    python benchmarks/plot_endpointing.py                         # -> docs/vad_endpointing.png
    python benchmarks/plot_endpointing.py --index 0 480 --out /tmp/ep.png

Each panel: the waveform (grey), frame energy in dB (blue, right axis), the threshold (dashed)
and the speech regions of :func:`speechattn.data.vad_sim.endpoint` (green).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="speechocean762/train", help="data reference under the data root")
    parser.add_argument("--index", type=int, nargs="+", default=[700, 1900, 1300], help="utterances to plot")
    parser.add_argument("--out", default=str(REPO / "docs" / "vad_endpointing.png"))
    parser.add_argument("--dpi", type=int, default=60)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechattn.audio import load_audio
    from speechattn.data.splits import resolve_manifest
    from speechattn.data.vad_sim import EndpointConfig, endpoint, frame_energy_db
    from speechattn.utils.paths import data_root

    manifest = resolve_manifest(args.data, data_root())
    cfg = EndpointConfig()
    fig, axes = plt.subplots(len(args.index), 1, figsize=(10, 1.9 * len(args.index)))
    for ax, i in zip(np.atleast_1d(axes), args.index):
        utt = manifest[i]
        wave = load_audio(utt.path, 16000)[0].numpy()
        energy = frame_energy_db(wave, 16000, cfg.frame_ms, cfg.hop_ms)
        threshold = max(np.percentile(energy, cfg.peak_percentile) + cfg.threshold_db,
                        np.percentile(energy, cfg.floor_percentile) + cfg.floor_margin_db)
        bucket = max(1, len(wave) // 1500)  # min/max envelope: same picture, far smaller PNG
        env = wave[: len(wave) // bucket * bucket].reshape(-1, bucket)
        t = np.arange(env.shape[0]) * bucket / 16000
        ax.fill_between(t, env.min(1), env.max(1), color="0.6", linewidth=0)
        for start, end in endpoint(wave, 16000, cfg):
            ax.axvspan(start, end, color="tab:green", alpha=0.2, linewidth=0)
        ax.set_yticks([])
        twin = ax.twinx()
        twin.plot(np.arange(len(energy)) * cfg.hop_ms / 1000 + cfg.frame_ms / 2000, energy, color="tab:blue",
                  linewidth=0.8)
        twin.axhline(threshold, color="tab:blue", linestyle="--", linewidth=0.6)
        twin.set_ylabel("dB", fontsize=7)
        twin.tick_params(labelsize=7)
        ax.tick_params(labelsize=7)
        ax.set_title(f"{utt.id}: {utt.text}", fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, dpi=args.dpi)
    buf.seek(0)  # 32-colour palette: a few tens of KB for the docs
    Image.open(buf).convert("RGB").quantize(colors=32).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
