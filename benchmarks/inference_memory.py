"""Peak memory of the inference commands: ``embed`` on a 4-hour file, ``label`` on 1, 100 and
1000 short files (and on the 4-hour file).

Every measurement runs the real command line in a fresh process::

    python -c WRAPPER STATS.json embed RUN_DIR FILE -o OUT.npy

where WRAPPER runs ``speechattn.cli.main`` in-process (as ``python -m speechattn.cli.main``
does) and, when it exits, writes the process's peak RSS: ``VmHWM`` from /proc/self/status, the
whole process (Python, torch import, model, the work); not ``ru_maxrss``, which on Linux starts
from the parent's RSS at fork. Wall time is measured by the parent (start-up and imports
included). The commands set no thread count: torch uses its default (reported).

Rows:

- ``embed`` on a 10-second file: the floor (imports + model);
- ``embed`` on a 30-minute file through the whole-file path that every file took before issue
  27 (``SpeakerRecognizer.window_seconds`` set to infinity in the wrapper): memory grows with
  the file;
- ``embed`` on the 4-hour file: read block by block, embedded in 5-minute windows;
- ``label`` on 1, 100 and 1000 files of 2-5 s, and on the 4-hour file (streamed).

Audio: 16 kHz 16-bit WAV written under a temporary folder (``--tmp``). The short files are cut
from real speech (speechocean762 dev, or FSDD, under the data root; synthetic tones and noise
without them). The long files are sparse WAVs: 30 s of that speech every 10 minutes, digital
silence between (instantly written, no disk space for the silence).

Models: ``--speaker-run`` / ``--label-run`` (trained runs); without them, the architectures of
recipes/speaker.yaml and recipes/vad.yaml are trained for a few steps on FSDD (a memory
benchmark: the weights' values do not matter), once, under benchmarks/out/.

Usage::

    python benchmarks/inference_memory.py                      # 4 h, 1/100/1000 files
    python benchmarks/inference_memory.py --smoke              # 3 min, 1/10 files: checks the script
    python benchmarks/inference_memory.py --speaker-run runs/speaker --label-run runs/vad

Results: a Markdown table on stdout and JSON in ``benchmarks/results/inference_memory.json``
(``--json`` to change), with the CPU (``lscpu`` model name and flags).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import OUT_DIR, environment, lscpu, print_table, run_cli, smoke_run, write_json  # noqa: E402

from tests.audio_support import sparse_wav  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "inference_memory.json"
RATE = 16000

#: Run by the command's wrapper (``_common.run_cli``) before the command: with
#: ``BENCH_EMBED_WINDOW`` set, ``embed`` takes files in windows of that many seconds.
PRELUDE = """
if os.environ.get("BENCH_EMBED_WINDOW"):
    import speechattn.inference
    speechattn.inference.SpeakerRecognizer.window_seconds = float(os.environ["BENCH_EMBED_WINDOW"])
"""


# --------------------------------------------------------------------------- models


def _labelled_folder(out: Path, data_root: Path) -> Path:
    """12 FSDD recordings (symlinks) with one RTTM calling all but their edges speech."""
    import soundfile as sf

    folder = out / "labelled"
    if (folder / "all.rttm").exists():
        return folder
    recordings = sorted((data_root / "fsdd" / "recordings").glob("*.wav"))[:12]
    if not recordings:
        raise SystemExit(f"no FSDD under {data_root}: pass --speaker-run and --label-run")
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for p in recordings:
        link = folder / p.name
        if not link.exists():
            link.symlink_to(p.resolve())
        duration = sf.info(str(p)).duration
        lines.append(f"SPEAKER {p.stem} 1 0.050 {max(0.05, duration - 0.1):.3f} <NA> <NA> speech <NA> <NA>\n")
    (folder / "all.rttm").write_text("".join(lines))
    return folder


def tiny_runs(data_root: Path) -> tuple[Path, Path]:
    """The speaker.yaml and vad.yaml architectures, trained for a few steps on FSDD."""
    out = OUT_DIR / "inference_memory"
    out.mkdir(parents=True, exist_ok=True)
    speaker = smoke_run(REPO / "recipes" / "speaker.yaml", [
        "data.train=fsdd:train", "data.dev=fsdd:test", "data.noise=null", "augment.noise_prob=0",
        "data.speed_perturb=[1.0]", "data.max_train_utterances=64", "data.max_dev_utterances=40",
        "train.batch_size=32", "train.max_steps=2", "train.eval_every=1", "train.warmup_steps=1"], out)
    folder = _labelled_folder(out, data_root)
    label = smoke_run(REPO / "recipes" / "vad.yaml", [
        "data.simulate=null", f"data.train={folder}", f"data.dev={folder}", "data.crop_seconds=0.5",
        "train.batch_size=4", "train.max_epochs=1", "train.eval_every=1", "train.warmup_steps=1"], out)
    return speaker, label


# --------------------------------------------------------------------------- audio


def speech_source(data_root: Path, seconds: float = 120.0) -> tuple[np.ndarray, str]:
    """About ``seconds`` of real speech at 16 kHz (float32), and where it came from."""
    from speechattn.audio import load_audio

    candidates = sorted((data_root / "speechocean762" / "audio").glob("*/*.ogg"))[:60]
    where = "speechocean762 audio"
    if not candidates:
        candidates, where = sorted((data_root / "fsdd" / "recordings").glob("*.wav"))[:300], "fsdd recordings"
    parts, total = [], 0
    for path in candidates:
        wave, _ = load_audio(path, RATE)
        parts.append(wave.numpy())
        total += wave.numel()
        if total >= seconds * RATE:
            break
    if parts:
        return np.concatenate(parts).astype(np.float32), where
    rng = np.random.default_rng(0)  # no corpus: tones in noise
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0) + 0.02 * rng.standard_normal(t.size)
            ).astype(np.float32), "synthetic"


def short_files(folder: Path, count: int, speech: np.ndarray, seed: int = 0) -> Path:
    """``count`` WAVs of 2-5 s cut from ``speech`` at random offsets, in ``folder``."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        n = int(rng.uniform(2.0, 5.0) * RATE)
        start = int(rng.integers(0, max(1, speech.size - n)))
        sf.write(folder / f"utt{i:04d}.wav", speech[start : start + n], RATE, subtype="PCM_16")
    return folder


# --------------------------------------------------------------------------- measuring


def measure(args: list[str], work: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``speechattn ARGS`` in a fresh process; its peak RSS, wall time and exit code."""
    proc = run_cli(args, work / "process.json", PRELUDE, env)
    row = {"peak_rss_mb": proc.stats.get("peak_rss_mb"), "wall_s": proc.wall_s, "exit_code": proc.returncode,
           "torch_threads": proc.stats.get("torch_threads")}
    if proc.returncode != 0:
        row["stderr_tail"] = proc.stderr.strip().splitlines()[-3:]
    return row


def cpu_info() -> dict[str, Any]:
    """``lscpu``'s model name and flags (what the numbers were measured on)."""
    fields = lscpu()
    if not fields:
        return {}
    return {"model_name": fields.get("Model name"), "flags": fields.get("Flags", "").split(),
            "cpus": fields.get("CPU(s)")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speaker-run", type=Path, help="trained speaker run (default: a tiny one, trained here)")
    parser.add_argument("--label-run", type=Path, help="trained frame-labeling run (default: a tiny one)")
    parser.add_argument("--hours", type=float, default=4.0, help="length of the long file")
    parser.add_argument("--files", default="1,100,1000", help="label batch sizes, comma-separated")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the generated audio (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help=f"results file (default: {RESULTS})")
    parser.add_argument("--smoke", action="store_true", help="3-minute long file, 1 and 10 files: checks the script")
    args = parser.parse_args()
    if args.smoke:
        args.hours, args.files = 0.05, "1,10"
    counts = [int(c) for c in args.files.split(",") if c.strip()]

    from speechattn.utils.paths import data_root

    root = data_root().absolute()
    if args.speaker_run is None or args.label_run is None:
        speaker, label = tiny_runs(root)
        args.speaker_run, args.label_run = args.speaker_run or speaker, args.label_run or label
    tmp = Path(tempfile.mkdtemp(prefix="inference_memory-", dir=args.tmp))
    try:
        speech, where = speech_source(root)
        long_path = sparse_wav(tmp / "long.wav", args.hours * 3600, RATE, speech[: 30 * RATE], every=600.0)
        half_hour = sparse_wav(tmp / "half_hour.wav", min(1800.0, args.hours * 3600), RATE, speech[: 30 * RATE],
                               every=300.0)
        ten_s = short_files(tmp / "ten_seconds", 1, speech)  # a 2-5 s file: the floor
        out = tmp / "out"
        out.mkdir()
        rows: list[dict[str, Any]] = []

        def add(command: str, what: str, audio_s: float, cli: list[str], env: dict[str, str] | None = None) -> None:
            print(f"{command}: {what} ...", file=sys.stderr, flush=True)
            row = {"command": command, "input": what, "audio_hours": round(audio_s / 3600, 3),
                   **measure(cli, tmp, env)}
            rows.append(row)
            print(f"  {row['peak_rss_mb']:.0f} MB, {row['wall_s']:.1f} s, exit {row['exit_code']}", file=sys.stderr)

        hours = args.hours
        add("embed", "1 file of 2-5 s", 3.5, ["embed", str(args.speaker_run), str(ten_s), "-o", str(out / "e0.npy")])
        add("embed", f"{min(0.5, hours):g} h file, whole-file path (before)", min(1800.0, hours * 3600),
            ["embed", str(args.speaker_run), str(half_hour), "-o", str(out / "e1.npy")], {"BENCH_EMBED_WINDOW": "inf"})
        add("embed", f"{hours:g} h file, 5-min windows", hours * 3600,
            ["embed", str(args.speaker_run), str(long_path), "-o", str(out / "e2.npy")])
        for count in counts:
            folder = short_files(tmp / f"files{count}", count, speech, seed=count)
            seconds = sum(__import__("soundfile").info(str(p)).duration for p in folder.glob("*.wav"))
            add("label", f"{count} file{'s' if count > 1 else ''} of 2-5 s", seconds,
                ["label", str(args.label_run), str(folder), "-o", str(out / f"labels{count}"), "--no-progress"])
            shutil.rmtree(folder)
        add("label", f"{hours:g} h file", hours * 3600,
            ["label", str(args.label_run), str(long_path), "-o", str(out / "labels_long"), "--no-progress"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    columns = [("command", "command"), ("input", "input"), ("audio_hours", "audio h"),
               ("peak_rss_mb", "peak RSS MB (VmHWM)"), ("wall_s", "wall s"), ("exit_code", "exit")]
    env = environment()
    cpu = cpu_info()
    print(f"\nspeechattn inference memory: {env['cpu']} ({cpu.get('cpus')} CPUs), torch {env['torch']}, "
          f"torch threads {rows[0].get('torch_threads')}; speech from {where}\n")
    print_table(rows, columns)
    payload = {"rows": rows, "speaker_run": str(args.speaker_run), "label_run": str(args.label_run),
               "hours": args.hours, "speech_source": where, "environment": env, "lscpu": cpu,
               "smoke": args.smoke}
    path = write_json("inference_memory", payload,
                      args.json or (RESULTS.with_name("inference_memory_smoke.json") if args.smoke else RESULTS))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
