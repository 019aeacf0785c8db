"""Voice activity: speechattn's frame labeler vs silero-vad and webrtcvad, in one harness.

Accuracy: every system labels the SAME dev recordings (by default the simulated dev set the
model was evaluated on during training, which also chose its checkpoint: simulated again from
the model's recipe when it is not on this machine; or ``--dev DIR`` with audio + RTTM), and all
are scored by the same code (:mod:`speechattn.metrics.detection`): frame precision / recall /
F1 and detection error rate on a 10 ms grid, no collar.

* ours: ``Labeler.label_file`` (streaming, the recipe's post-processing), as ``speechattn label``;
* silero-vad: ``get_speech_timestamps(wav, model)`` with its default parameters (threshold 0.5,
  min speech 250 ms, min silence 100 ms, speech pad 30 ms), JIT model from the wheel; and
  ``silero-norm``, the same on the file scaled to a 0.9 peak first (silero misses much quiet
  speech; accuracy only, its speed is silero's);
* webrtcvad: ``Vad(mode).is_speech`` on 30 ms frames, for each aggressiveness mode 0-3 (modes 1
  and 2 are scored only; timing modes 0 and 3 covers its speed).

Speed: time to label one long file (1 hour by default; the dev recordings concatenated and
written once as 16 kHz 16-bit WAV), whole pipeline from the file to segments (reading and
decoding included; model loading excluded; one untimed warm-up run on a 10 s file first), all
systems in this process, ``--repeats`` rounds interleaved, median reported,
each with ``--threads`` torch threads (silero's import sets 1; it is reset). Ours is also run in
a fresh process that only loads the model and labels the file, for its whole-process peak RSS
(``VmHWM``, torch import included; ``ru_maxrss`` would include the parent's RSS at spawn time).

Install the baselines without touching torch / torchaudio (silero's wheel carries its model and
needs only ``packaging`` besides torch)::

    pip install --no-deps silero-vad==6.2.3 webrtcvad-wheels==2.0.14.post1

Usage (timings only mean something on an otherwise idle machine)::

    python benchmarks/vad_baseline.py vad        # the shipped model: dev F1 + 1-hour timing
    python benchmarks/vad_baseline.py runs/vad --hours 0.25 --systems ours silero   # a run of recipes/vad.yaml
    python benchmarks/vad_baseline.py --smoke     # tiny model, 6 dev files, 60 s file: checks the script

Results: a Markdown table on stdout and JSON in ``benchmarks/out/vad_baseline.json``
(``--json`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import OUT_DIR, environment, peak_rss_bytes, print_table, run_isolated, write_json  # noqa: E402
from _common import write_long_wav  # noqa: E402
from _common import smoke_run as common_smoke_run  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SYSTEMS = ("ours", "silero", "webrtc")
RATE = 16000
#: --smoke: a tiny model trained for a few steps on a tiny simulation.
SMOKE_TRAIN = [
    "data.simulate.max_train_utterances=120", "data.simulate.max_dev_utterances=40",
    "model.encoder.d_model=32", "model.encoder.num_layers=1", "model.encoder.ffn_dim=64",
    "train.batch_size=8", "train.max_epochs=2", "train.max_minutes=null", "train.eval_every=1",
]
#: Variants scored for accuracy only (their speed is that of the system they vary).
UNTIMED = ("silero-norm", "webrtc-1", "webrtc-2")
INSTALL_HINT = "pip install --no-deps silero-vad==6.2.3 webrtcvad-wheels==2.0.14.post1"


# --------------------------------------------------------------------------- systems

Segments = list  # list[speechattn.data.labels.Segment]


def system_ours(model: str) -> Callable[[Path], Segments]:
    from speechattn.inference import Labeler

    labeler = Labeler.load(model)
    return lambda path: labeler.label_file(path).segments


def system_silero(normalise: bool = False) -> Callable[[Path], Segments]:
    """silero-vad with its defaults; ``normalise``: the whole file scaled to a 0.9 peak first
    (silero misses much quiet speech; this variant shows it at its best, not as a streaming VAD)."""
    from silero_vad import get_speech_timestamps, load_silero_vad

    from speechattn.audio import load_audio
    from speechattn.data.labels import Segment

    model = load_silero_vad()

    def run(path: Path) -> Segments:
        wave, _ = load_audio(path, RATE)
        if normalise:
            wave = wave * (0.9 / max(float(wave.abs().max()), 1e-6))
        # In samples: return_seconds=True would round the times to 0.1 s (time_resolution=1).
        stamps = get_speech_timestamps(wave, model, sampling_rate=RATE)
        return [Segment(s["start"] / RATE, s["end"] / RATE, "speech") for s in stamps if s["end"] > s["start"]]

    return run


def system_webrtc(mode: int) -> Callable[[Path], Segments]:
    import soundfile as sf
    import webrtcvad

    from speechattn.audio import load_audio
    from speechattn.data.labels import FrameGrid

    vad = webrtcvad.Vad(mode)
    frame = int(0.03 * RATE)
    grid = FrameGrid(hop=0.03, offset=0.015)

    def run(path: Path) -> Segments:
        info = sf.info(str(path))
        if info.samplerate == RATE and info.channels == 1:
            pcm, _ = sf.read(str(path), dtype="int16")
        else:
            wave, _ = load_audio(path, RATE)
            pcm = (wave.clamp(-1, 1).numpy() * 32767).astype(np.int16)
        data = pcm.tobytes()
        n = len(pcm) // frame
        active = np.fromiter((vad.is_speech(data[2 * i * frame : 2 * (i + 1) * frame], RATE) for i in range(n)),
                             dtype=bool, count=n)
        return grid.to_segments(active, "speech", len(pcm) / RATE)

    return run


def build_systems(names: list[str], model: str, threads: int) -> dict[str, Callable[[Path], Segments]]:
    import torch

    out: dict[str, Callable[[Path], Segments]] = {}
    for name in names:
        if name == "ours":
            out["ours"] = system_ours(model)
        elif name == "silero":
            out["silero"] = system_silero()
            out["silero-norm"] = system_silero(normalise=True)
        else:
            for mode in range(4):
                out[f"webrtc-{mode}"] = system_webrtc(mode)
    torch.set_num_threads(threads)  # after silero's import, which sets 1
    return out


# --------------------------------------------------------------------------- accuracy

def dev_scores(systems: dict[str, Callable[[Path], Segments]], dev: str, recipe: Any, limit: int | None
               ) -> dict[str, Any]:
    from speechattn.audio import audio_info
    from speechattn.data.labelled import load_labelled
    from speechattn.data.labels import segments_to_frames
    from speechattn.metrics.detection import DetectionCounts

    data = load_labelled(dev, ".", label_map=recipe.data.label_map, tier=recipe.data.tier)
    items = data.items if limit is None else data.items[:limit]
    counts = {name: DetectionCounts(["speech"]) for name in systems}
    seconds = {name: 0.0 for name in systems}
    hours = 0.0
    for item in items:
        duration = audio_info(item.path).duration
        hours += duration / 3600
        ref = segments_to_frames(item.segments, ["speech"], 0.01, duration)
        for name, run in systems.items():
            start = time.perf_counter()
            hyp = run(item.path)
            seconds[name] += time.perf_counter() - start
            counts[name].update(ref, segments_to_frames(hyp, ["speech"], 0.01, duration))
    return {"dev": dev, "files": len(items), "hours": hours,
            "systems": {name: {**counts[name].metrics(), "seconds": seconds[name]} for name in systems}}


# --------------------------------------------------------------------------- speed

def long_file(dev: str, hours: float, out: Path) -> Path:
    """The dev recordings concatenated (cycled) to ``hours``, as 16 kHz PCM-16 WAV (made once)."""
    from itertools import cycle

    from speechattn.audio import load_audio
    from speechattn.data.labelled import load_labelled

    path = out / f"long_{hours:g}h.wav"
    if path.exists():
        return path
    items = load_labelled(dev, ".").items
    if not items:
        raise ValueError(f"{dev}: no recordings")
    waves = (load_audio(item.path, RATE)[0].numpy() for item in cycle(items))
    write_long_wav(path, RATE, int(hours * 3600 * RATE), waves)
    return path


def time_systems(systems: dict[str, Callable[[Path], Segments]], path: Path, warmup: Path, repeats: int
                 ) -> dict[str, Any]:
    """``repeats`` timed runs per system on ``path``, interleaved (the order rotates every round,
    so drifting machine load hits all alike), after one untimed run of each on the short
    ``warmup`` file (first-call costs: silero's JIT profiling runs, oneDNN kernel selection)."""
    import statistics

    names = [name for name in systems if name not in UNTIMED]
    for name in names:
        systems[name](warmup)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    found: dict[str, Segments] = {}
    for r in range(repeats):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            start, cpu0 = time.perf_counter(), time.process_time()
            found[name] = systems[name](path)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - cpu0)
            print(f"  {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    return {name: {"seconds": statistics.median(times[name]), "min_seconds": min(times[name]),
                   "all_seconds": times[name], "cpu_seconds": statistics.median(cpu[name]),
                   "segments": len(found[name]),
                   "speech_seconds": round(sum(s.end - s.start for s in found[name]), 1)} for name in names}


def rss_worker(model: str, path: str, threads: int) -> dict[str, Any]:
    """In a fresh process: load the model, label the file; wall time and whole-process peak RSS."""
    import torch

    torch.set_num_threads(threads)
    from speechattn.inference import Labeler

    labeler = Labeler.load(model)
    start = time.perf_counter()
    result = labeler.label_file(path)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": peak_rss_bytes() / 2**20,
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "segments": len(result.segments), "audio_seconds": result.duration}


# --------------------------------------------------------------------------- driver

def dev_set(recipe: Any, recorded: str | None) -> str:
    """The dev recordings the model was evaluated on in training: the path its metadata recorded
    when it is on this machine; else, for a model trained on simulated mixes (the shipped ``vad``),
    the same dev split simulated again from its recipe's ``data.simulate`` block (same seed, same
    sources: the same recordings; cached like training's)."""
    if recorded and Path(recorded).exists():
        return recorded
    if recipe.data.simulate is None:
        raise SystemExit(f"the model's dev set {recorded!r} is not on this machine; give --dev DIR")
    from speechattn.tasks.labeling import simulated_split
    from speechattn.utils.paths import data_root

    return str(simulated_split(recipe, "dev", data_root()).absolute())


def smoke_run(out: Path) -> Path:
    """A tiny VAD model (tiny simulation) for the smoke check (trained again when the recipe changes)."""
    return common_smoke_run(REPO / "recipes" / "vad.yaml", [*SMOKE_TRAIN, f"data.simulate.out_dir={out / 'smoke_sim'}"],
                            out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", metavar="MODEL",
                        help="a frame labeler: a shipped model name (vad), a model file or a run folder")
    parser.add_argument("--dev", default=None,
                        help="audio + RTTM to score (default: the model's dev set, simulated again if not here)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--hours", type=float, default=None, help="length of the timed file (default 1; 1/60 with --smoke)")
    parser.add_argument("--max-dev-files", type=int, default=None, help="score only the first N dev files")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every system")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per system on the long file (median)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR / "vad_baseline", help="long file, smoke run")
    parser.add_argument("--json", default=None, help="results file (default benchmarks/out/vad_baseline.json)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 6 dev files, a 60 s file")
    parser.add_argument("--skip-accuracy", action="store_true", help="only time the long file")
    parser.add_argument("--rss-worker", nargs=2, metavar=("RUN_DIR", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_worker:
        print(json.dumps(rss_worker(args.rss_worker[0], args.rss_worker[1], args.threads)))
        return
    try:
        import silero_vad  # noqa: F401
        import webrtcvad  # noqa: F401
    except ImportError as exc:
        if "silero" in args.systems or "webrtc" in args.systems:
            parser.exit(2, f"{exc}; install the baselines with:\n    {INSTALL_HINT}\n")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.hours is None:
        args.hours = 1 / 60 if args.smoke else 1.0
    if args.smoke:
        args.max_dev_files = args.max_dev_files or 6
        if args.run_dir is None:
            args.run_dir = smoke_run(args.out_dir)
    if args.run_dir is None:
        parser.error("give MODEL (vad, a model file or a recipes/vad.yaml run) or --smoke")
    from speechattn.inference.runs import load_run_model

    source = str(args.run_dir)
    model = load_run_model(source, "labeling", "frame labeler")
    dev = args.dev or dev_set(model.recipe, model.info.get("dev_data"))

    systems = build_systems(args.systems, source, args.threads)
    results: dict[str, Any] = {"model": source, "environment": environment(), "threads": args.threads,
                               "run_dev_metrics": model.info.get("dev_metrics") or model.card.metrics.get("dev")}
    if not args.skip_accuracy:
        print(f"scoring {len(systems)} systems on {dev} ...", file=sys.stderr, flush=True)
        results["accuracy"] = dev_scores(systems, dev, model.recipe, args.max_dev_files)
    path = long_file(dev, args.hours, args.out_dir)
    print(f"timing on {path} ({args.hours:g} h) ...", file=sys.stderr, flush=True)
    warmup = long_file(dev, 10 / 3600, args.out_dir)
    results["speed"] = {"file": str(path), "hours": args.hours, "loadavg_before": os.getloadavg(),
                        "systems": time_systems(systems, path, warmup, args.repeats), "loadavg_after": os.getloadavg()}
    if "ours" in systems:
        rss = run_isolated([str(Path(__file__).resolve()), "--rss-worker", str(args.run_dir), str(path),
                            "--threads", str(args.threads)])
        results["speed"]["ours_fresh_process"] = rss

    rows = []
    speed = results["speed"]["systems"]
    silero_s = speed.get("silero", {}).get("seconds")
    for name in systems:
        acc = results.get("accuracy", {}).get("systems", {}).get(name, {})
        s = speed.get(name, {})
        rows.append({
            "system": name, "f1": acc.get("f1", "-"), "precision": acc.get("precision", "-"),
            "recall": acc.get("recall", "-"), "der": acc.get("detection_error_rate", "-"),
            "seconds": s.get("seconds", "-"), "rtf": s["seconds"] / (args.hours * 3600) if s else "-",
            "vs_silero": f"{silero_s / s['seconds']:.1f}x" if silero_s and s else "-",
        })
    print_table(rows, [("system", "system"), ("f1", "dev frame F1"), ("precision", "precision"),
                       ("recall", "recall"), ("der", "detection error rate"),
                       ("seconds", f"label {args.hours:g} h file (s, median)"), ("rtf", "real-time factor"),
                       ("vs_silero", "speed vs silero")])
    if "ours" in systems:
        r = results["speed"]["ours_fresh_process"]
        print(f"\nours in a fresh process: {r.get('seconds', float('nan')):.2f} s, whole-process peak RSS "
              f"{r.get('peak_rss_mb', float('nan')):.0f} MB" + (f" ({r['error']})" if "error" in r else ""))
    if "accuracy" in results:
        a = results["accuracy"]
        print(f"dev: {a['files']} files, {a['hours']:.2f} h ({a['dev']})")
    out = write_json("vad_baseline" + ("_smoke" if args.smoke else ""), results, args.json)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
