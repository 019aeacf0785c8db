"""Encoder real-time factor, offline and streaming, with whole-process peak RSS.

Scenarios (each in a fresh process, so "peak RSS" is that whole process's VmHWM):

- ``offline``: one forward pass over the features of the whole input (random log-mel-like
  features, 100 frames per second): ``encoder(features)``.
- ``chunked``: the same whole input through :func:`speechattn.inference.streaming.offline_outputs`
  (the whole-waveform path of ``Labeler`` / ``Transcriber``): inputs over 16,384 frames run as a
  stream of 4,096-frame chunks, with the forward pass's outputs.
- ``stream``: the same features pushed through ``encoder.stream()`` in 1-second chunks.
- ``file``: a real audio file of that duration read in blocks from disk, through the streaming
  frontend (log-mel) and the streaming encoder: what ``speechattn label``/``transcribe`` do.

RTF = processing seconds / audio seconds (lower is faster).

    python benchmarks/encoder.py                                   # 10 s, 10 min, 1 h
    python benchmarks/encoder.py --durations 10 600 --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ATTENTION_OPTIONS, add_attention_options, environment, peak_rss_bytes  # noqa: E402
from _common import print_table, run_isolated, worker_options, write_json, write_long_wav  # noqa: E402

FRAME_RATE = 100  # 10 ms frames


def build_encoder(args: argparse.Namespace) -> torch.nn.Module:
    from speechattn.nn.encoder import TruncatedEncoder

    torch.manual_seed(0)
    return TruncatedEncoder(
        input_dim=80, d_model=args.d_model, num_heads=args.heads, num_layers=args.layers, ffn_dim=4 * args.d_model,
        left_context=args.left, right_context=args.right,
    ).eval()


def worker(scenario: str, seconds: float, args: argparse.Namespace, audio: str | None) -> dict:
    torch.set_num_threads(args.threads)
    encoder = build_encoder(args)
    frames = int(seconds * FRAME_RATE)
    chunk = args.chunk_frames
    out_frames = 0
    with torch.inference_mode():
        encoder(torch.randn(1, 200, 80))  # warm-up of the kernels, not timed
        if scenario in ("offline", "chunked"):
            from speechattn.inference.streaming import offline_outputs

            feats = torch.randn(1, frames, 80)
            start = time.perf_counter()
            y = encoder(feats)[0] if scenario == "offline" else offline_outputs(encoder, feats)
            elapsed = time.perf_counter() - start
            out_frames = y.shape[1]
        elif scenario == "stream":
            gen = torch.Generator().manual_seed(0)
            stream = encoder.stream()
            elapsed = 0.0
            for first in range(0, frames, chunk):
                x = torch.randn(1, min(chunk, frames - first), 80, generator=gen)  # not timed
                start = time.perf_counter()
                out_frames += stream.push(x).shape[1]
                elapsed += time.perf_counter() - start
            start = time.perf_counter()
            out_frames += stream.flush().shape[1]
            elapsed += time.perf_counter() - start
        else:
            from speechattn.audio import FeatureExtractor, StreamingFeatureExtractor, iter_audio_blocks

            assert audio is not None
            features = StreamingFeatureExtractor(FeatureExtractor())
            stream = encoder.stream()
            start = time.perf_counter()
            for block in iter_audio_blocks(audio, 16000, block_seconds=chunk / FRAME_RATE):
                out_frames += stream.push(features.push(block)[None]).shape[1]
            out_frames += stream.push(features.flush()[None]).shape[1]
            out_frames += stream.flush().shape[1]
            elapsed = time.perf_counter() - start
    return {
        "scenario": scenario,
        "audio_s": seconds,
        "seconds": elapsed,
        "rtf": elapsed / seconds,
        "frames": out_frames,
        "peak_rss_mb": peak_rss_bytes() / 2**20,
    }


def make_audio(path: Path, seconds: float, sample_rate: int = 16000) -> str:
    """Write ``seconds`` of 16-bit audio block by block: real speech from the data root when
    available (speechocean762 dev utterances, looped), otherwise noise."""
    import soundfile as sf

    from speechattn.utils.paths import data_root

    sources = sorted((data_root() / "speechocean762" / "audio").glob("*/*.ogg"))[:200]
    rng = np.random.default_rng(0)

    def blocks() -> Iterator[np.ndarray]:
        for i in itertools.count():
            if sources:
                yield sf.read(str(sources[i % len(sources)]), dtype="float32")[0]
            else:
                yield (0.1 * rng.standard_normal(sample_rate * 5)).astype("float32")

    write_long_wav(path, sample_rate, int(seconds * sample_rate), blocks())
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=[10, 600, 3600], help="seconds of audio")
    parser.add_argument("--scenarios", nargs="+", default=["offline", "chunked", "stream", "file"])
    parser.add_argument("--layers", type=int, default=6)
    add_attention_options(parser)
    parser.add_argument("--chunk-frames", type=int, default=100, help="streaming chunk (frames of 10 ms)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="output path (default benchmarks/out/encoder.json)")
    parser.add_argument("--worker", nargs=2, metavar=("SCENARIO", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--audio", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker[0], float(args.worker[1]), args, args.audio)))
        return

    common = worker_options(args, ["layers", *ATTENTION_OPTIONS, "chunk_frames", "threads"])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.durations:
            audio = None
            if "file" in args.scenarios:
                audio = make_audio(Path(tmp) / f"audio_{int(seconds)}s.wav", seconds)
            for scenario in args.scenarios:
                extra = ["--audio", audio] if scenario == "file" and audio else []
                res = run_isolated([__file__, "--worker", scenario, str(seconds), *common, *extra])
                res.setdefault("scenario", scenario)
                res.setdefault("audio_s", seconds)
                results.append(res)
                print(f"  {scenario:8s} {seconds:>6.0f} s: {res}", file=sys.stderr, flush=True)
            if audio:
                Path(audio).unlink()
    print(f"\nencoder {args.layers} x {args.d_model} (ffn {4 * args.d_model}, {args.heads} heads, "
          f"left {args.left}, right {args.right}), {args.threads} threads, stream chunk {args.chunk_frames} frames\n")
    rows = [
        {"scenario": r["scenario"], "audio": f"{r['audio_s']:.0f} s", "seconds": r.get("seconds", r.get("error")),
         "rtf": r.get("rtf", "-"), "peak_rss_mb": r.get("peak_rss_mb", "-")}
        for r in results
    ]
    print_table(rows, [("scenario", "scenario"), ("audio", "audio"), ("seconds", "wall s"), ("rtf", "RTF"),
                       ("peak_rss_mb", "peak RSS MB")])
    path = write_json("encoder", {"environment": environment(), "args": vars(args), "results": results}, args.json)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
