"""Encoder real-time factor, offline and streaming, with whole-process peak RSS; and a peer,
torchaudio's Conformer, over the same input.

Scenarios (each in a fresh process, so "peak RSS" is that whole process's VmHWM):

- ``offline``: one forward pass over the features of the whole input (random log-mel-like
  features, 100 frames per second): ``encoder(features)``.
- ``chunked``: the same whole input through :func:`speechattn.inference.streaming.offline_outputs`
  (the whole-waveform path of ``Labeler`` / ``Transcriber``): inputs over 16,384 frames run as a
  stream of 4,096-frame chunks, with the forward pass's outputs.
- ``stream``: the same features pushed through ``encoder.stream()`` in 1-second chunks.
- ``file``: a real audio file of that duration read in blocks from disk, through the streaming
  frontend (log-mel) and the streaming encoder: what ``speechattn label``/``transcribe`` do.
- ``conformer``: the peer. One forward pass, as ``offline``, of a ``torchaudio.models.Conformer``
  of about our size, over the same input: :class:`asr_baseline.ConformerCTCEncoder` (imported
  from ``benchmarks/asr_baseline.py``, the Conformer that the CTC baseline trains), whose
  ``ffn_dim`` is matched there to our encoder's parameter count (``asr_baseline.conformer_config``).

What each model receives: the SAME tensor shape, ``(1, 100 * seconds, 80)`` float32 features
(random values: only shape and dtype matter for the time), under ``torch.inference_mode`` with the
same ``--threads``, timed around the forward call only, after the same 200-frame warm-up. The
benchmarked encoder has no subsampling (factor 1, 100 frames per second throughout); the Conformer
gets the same front end: speechattn's ``Subsampling`` at factor 1 (a Linear 80 -> d_model) ->
torchaudio ``Conformer`` (which has no subsampling of its own; d_model, layers and heads as ours,
depthwise kernel ``--conformer-kernel``, 15 by default since our encoder here has no convolution
module) -> LayerNorm. So both run their layers on the same sequence length (100 frames per second
of audio) and width. Both parameter counts are in the JSON (``params``).

Caveats. The Conformer attends over the whole input (full attention: time O(T^2)); ours attends to
a window of ``--left`` / ``--right`` frames (time and memory O(T)). The blocks differ too: a
Conformer block is half feed-forward -> attention -> convolution module -> half feed-forward ->
LayerNorm, without positional encoding (its convolutions carry position); ours is attention
(rotary positions) -> feed-forward; matching parameter counts makes the Conformer's ffn_dim about
a third of ours. torchaudio runs attention through ``torch.nn.MultiheadAttention`` and
``scaled_dot_product_attention``: recent PyTorch's CPU kernel for it (2.14 when this was written)
is flash-style and never holds the T x T matrix, so the Conformer's peak memory grows linearly
too, only its time quadratically; its math fallback (older PyTorch, other builds) holds the
``(heads, T, T)`` float32 scores, about 2.4 such matrices at once (measured). Each ``conformer``
row records that size (``attention_matrix_mb``, one matrix) and whether this PyTorch materialises
it (``attention_materialised``, from the RSS a 1,024-frame probe of the first layer's attention
adds, run after the timed pass and its peak RSS, or before the pass where about 2.5 such matrices
would not fit in the available memory); if it materialises them there, the row is skipped
(with the reason) instead of running out of memory. Inputs longer than ``--conformer-max-s``
(default 600 s; 1 h is 360,000 frames, a 1.9 TiB matrix and hours of quadratic compute) are not
run: their row has ``skipped`` (the reason), ``rtf`` / ``seconds`` / ``peak_rss_mb`` null, the
matrix size and ``estimated_seconds``, a quadratic extrapolation from the longest Conformer row
run (an upper bound: only attention is quadratic; none when that row is under 60 s).

RTF = processing seconds / audio seconds (lower is faster).

    python benchmarks/encoder.py                                   # 10 s, 10 min, 1 h
    python benchmarks/encoder.py --durations 10 600 --json out.json
    python benchmarks/encoder.py --smoke --json /tmp/encoder.json  # 1 s, 10 s, 60 s
    python benchmarks/encoder.py --scenarios offline conformer --conformer-max-s 1200
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

from _common import ATTENTION_OPTIONS, PeakSampler, add_attention_options, count_params, environment  # noqa: E402
from _common import peak_rss_bytes, print_table, rss_bytes, run_isolated, worker_options, write_json  # noqa: E402
from _common import write_long_wav  # noqa: E402

FRAME_RATE = 100  # 10 ms frames
FEATURE_DIM = 80
SCENARIOS = ("offline", "chunked", "stream", "file", "conformer")
DURATIONS = [10, 600, 3600]
SMOKE_DURATIONS = [1, 10, 60]
FLOAT_BYTES = 4  # float32
#: skipped Conformer rows get a time estimate from a Conformer row at least this long (seconds).
ESTIMATE_MIN_S = 60
#: frames of the probe that tells whether attention materialises its T x T scores here.
PROBE_FRAMES = 1024
#: PyTorch's math attention path peaks at about this many (heads, T, T) matrices (2.4 measured).
MATH_PATH_MATRICES = 2.5


def encoder_recipe(args: argparse.Namespace) -> object:  # -> CTCRecipe
    """A CTC recipe whose ``model.encoder`` is the encoder under test (no subsampling: 100 frames
    per second), as ``asr_baseline.conformer_config`` / ``conformer_encoder`` read one."""
    from speechattn.audio.features import FeatureConfig
    from speechattn.nn.encoder import EncoderConfig
    from speechattn.recipes.ctc import CTCModelConfig, CTCRecipe

    encoder = EncoderConfig(
        input_dim=FEATURE_DIM, d_model=args.d_model, num_heads=args.heads, num_layers=args.layers,
        ffn_dim=4 * args.d_model, left_context=args.left, right_context=args.right,
    )
    return CTCRecipe(features=FeatureConfig(num_mel_bins=FEATURE_DIM), model=CTCModelConfig(encoder=encoder))


def build_encoder(args: argparse.Namespace) -> torch.nn.Module:
    from speechattn.nn.encoder import TruncatedEncoder

    torch.manual_seed(0)
    return TruncatedEncoder.from_config(encoder_recipe(args).model.encoder).eval()  # type: ignore[attr-defined]


def build_conformer(args: argparse.Namespace) -> torch.nn.Module:
    """The peer: asr_baseline's ConformerCTCEncoder (speechattn Subsampling at factor 1 ->
    torchaudio Conformer -> LayerNorm) with ``--conformer-ffn`` / ``--conformer-kernel``."""
    from asr_baseline import conformer_encoder

    assert args.conformer_ffn and args.conformer_kernel, "the parent passes the matched ffn_dim and kernel"
    torch.manual_seed(0)
    return conformer_encoder(encoder_recipe(args), args.conformer_ffn, args.conformer_kernel).eval()


def conformer_setup(args: argparse.Namespace) -> dict:
    """``asr_baseline.conformer_config`` for the encoder under test: the Conformer's ffn_dim
    (``--conformer-ffn``, else matched to our parameter count) and kernel, both parameter counts."""
    from asr_baseline import conformer_config

    conf = conformer_config(encoder_recipe(args), args.conformer_ffn, args.conformer_kernel)
    ours = count_params(build_encoder(args))
    if conf["truncated_params"] != ours:  # the recipe's encoder must be the one benchmarked
        raise RuntimeError(f"parameter counts differ: recipe encoder {conf['truncated_params']}, benchmarked {ours}")
    return conf


def attention_matrix_mb(frames: int, heads: int) -> float:
    """One layer's ``(heads, T, T)`` float32 attention scores for batch 1, in MiB: what full
    attention holds when it materialises them (PyTorch's math path holds about two at once)."""
    return heads * frames * frames * FLOAT_BYTES / 2**20


def attention_materialised(attention: torch.nn.Module, d_model: int, heads: int) -> bool:
    """Whether ``attention`` (a Conformer layer's ``nn.MultiheadAttention``, called as torchaudio
    does) holds the T x T scores on this PyTorch: RSS it adds over ``PROBE_FRAMES`` frames, against
    one such matrix (a flash-style kernel adds a few MB; the math path about 2.4 matrices)."""
    x = torch.randn(PROBE_FRAMES, 1, d_model)
    mask = torch.zeros(1, PROBE_FRAMES, dtype=torch.bool)
    attention(x, x, x, key_padding_mask=mask, need_weights=False)
    before = rss_bytes()
    with PeakSampler() as sampler:
        attention(x, x, x, key_padding_mask=mask, need_weights=False)
    return (sampler.peak - before) / 2**20 > attention_matrix_mb(PROBE_FRAMES, heads)


def available_mb() -> float:
    """``MemAvailable`` of /proc/meminfo in MiB (infinite where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return float("inf")


def worker(scenario: str, seconds: float, args: argparse.Namespace, audio: str | None) -> dict:
    torch.set_num_threads(args.threads)
    encoder = build_conformer(args) if scenario == "conformer" else build_encoder(args)
    frames = int(seconds * FRAME_RATE)
    chunk = args.chunk_frames
    out_frames = 0
    peak = None  # the peak RSS when read before the end
    extra: dict = {}
    with torch.inference_mode():
        encoder(torch.randn(1, 200, FEATURE_DIM))  # warm-up of the kernels, not timed
        if scenario == "conformer":
            attention = encoder.conformer.conformer_layers[0].self_attn  # type: ignore[union-attr,index]
            matrix = attention_matrix_mb(frames, args.heads)
            need, free = MATH_PATH_MATRICES * matrix, available_mb()
            # The probe runs before the pass only where the math path could not fit; otherwise
            # after it, once its peak RSS is read (the probe's own few MB stay out of it).
            if need > free and attention_materialised(attention, args.d_model, args.heads):
                return {**skipped_row(seconds, args), "attention_materialised": True,
                        "skipped": f"this PyTorch's attention materialises the {args.heads} x T x T scores: about "
                                   f"{need / 1024:.1f} GiB at T = {frames}, {free / 1024:.1f} GiB available"}
            feats = torch.randn(1, frames, FEATURE_DIM)
            start = time.perf_counter()
            y = encoder(feats)[0]
            elapsed = time.perf_counter() - start
            out_frames = y.shape[1]
            peak = peak_rss_bytes()
            extra = {"attention_matrix_mb": matrix,
                     "attention_materialised": attention_materialised(attention, args.d_model, args.heads)}
        elif scenario in ("offline", "chunked"):
            from speechattn.inference.streaming import offline_outputs

            feats = torch.randn(1, frames, FEATURE_DIM)
            start = time.perf_counter()
            y = encoder(feats)[0] if scenario == "offline" else offline_outputs(encoder, feats)
            elapsed = time.perf_counter() - start
            out_frames = y.shape[1]
        elif scenario == "stream":
            gen = torch.Generator().manual_seed(0)
            stream = encoder.stream()
            elapsed = 0.0
            for first in range(0, frames, chunk):
                x = torch.randn(1, min(chunk, frames - first), FEATURE_DIM, generator=gen)  # not timed
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
        "peak_rss_mb": (peak or peak_rss_bytes()) / 2**20,
        "model": "conformer" if scenario == "conformer" else "truncated",
        "params": count_params(encoder),
        **extra,
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


def skipped_row(seconds: float, args: argparse.Namespace) -> dict:
    """The row of a ``conformer`` input longer than ``--conformer-max-s``: not run."""
    frames = int(seconds * FRAME_RATE)
    matrix = attention_matrix_mb(frames, args.heads)
    return {
        "scenario": "conformer", "audio_s": seconds, "seconds": None, "rtf": None, "frames": frames,
        "peak_rss_mb": None, "model": "conformer", "attention_matrix_mb": matrix,
        "skipped": (f"{seconds:.0f} s > --conformer-max-s {args.conformer_max_s:.0f} s: full attention over "
                    f"T = {frames} frames is O(T^2) in time, and a materialised {args.heads} x T x T float32 "
                    f"attention matrix would take {matrix / 1024:.1f} GiB per layer"),
    }


def estimate_skipped(results: list[dict]) -> None:
    """``estimated_seconds`` / ``estimated_from_s`` of the skipped Conformer rows: the longest
    Conformer row run, scaled by (T / T_run)^2 (an upper bound: only attention is quadratic);
    none when that row is shorter than ``ESTIMATE_MIN_S`` (the bound would be far too loose)."""
    runs = [r for r in results if r["scenario"] == "conformer" and r.get("seconds") is not None]
    if not runs or max(r["audio_s"] for r in runs) < ESTIMATE_MIN_S:
        return
    ref = max(runs, key=lambda r: r["audio_s"])
    for r in results:
        if r.get("skipped"):
            r["estimated_seconds"] = ref["seconds"] * (r["audio_s"] / ref["audio_s"]) ** 2
            r["estimated_from_s"] = ref["audio_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=None,
                        help=f"seconds of audio (default {' '.join(map(str, DURATIONS))}; "
                             f"{' '.join(map(str, SMOKE_DURATIONS))} with --smoke)")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--smoke", action="store_true",
                        help=f"quick check of the script: --durations {' '.join(map(str, SMOKE_DURATIONS))} "
                             f"unless given")
    parser.add_argument("--layers", type=int, default=6)
    add_attention_options(parser)
    parser.add_argument("--chunk-frames", type=int, default=100, help="streaming chunk (frames of 10 ms)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--conformer-max-s", type=float, default=600.0,
                        help="longest input the conformer scenario runs (full attention: O(T^2)); longer "
                             "ones get a skipped row (default 600)")
    parser.add_argument("--conformer-ffn", type=int, default=None,
                        help="the Conformer's ffn_dim (default: matched to our encoder's parameter count)")
    parser.add_argument("--conformer-kernel", type=int, default=None,
                        help="the Conformer's depthwise kernel (default 15: our encoder here has no "
                             "convolution module)")
    parser.add_argument("--json", default=None, help="output path (default benchmarks/out/encoder.json)")
    parser.add_argument("--worker", nargs=2, metavar=("SCENARIO", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--audio", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.durations is None:
        args.durations = list(SMOKE_DURATIONS if args.smoke else DURATIONS)

    if args.worker:
        print(json.dumps(worker(args.worker[0], float(args.worker[1]), args, args.audio)))
        return

    conf = conformer_setup(args)
    args.conformer_ffn, args.conformer_kernel = conf["ffn_dim"], conf["kernel_size"]  # the workers build this one
    print(f"encoder parameters: truncated {conf['truncated_params']:,}, conformer {conf['conformer_params']:,} "
          f"(ffn_dim {conf['ffn_dim']} {conf['chosen']}, kernel {conf['kernel_size']}; "
          f"ratio {conf['param_ratio']:.3f})", file=sys.stderr, flush=True)
    common = worker_options(args, ["layers", *ATTENTION_OPTIONS, "chunk_frames", "threads", "conformer_ffn",
                                   "conformer_kernel"])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.durations:
            audio = None
            if "file" in args.scenarios:
                audio = make_audio(Path(tmp) / f"audio_{int(seconds)}s.wav", seconds)
            for scenario in args.scenarios:
                if scenario == "conformer" and seconds > args.conformer_max_s:
                    results.append(skipped_row(seconds, args))
                    print(f"  {scenario:9s} {seconds:>6.0f} s: skipped", file=sys.stderr, flush=True)
                    continue
                extra = ["--audio", audio] if scenario == "file" and audio else []
                res = run_isolated([__file__, "--worker", scenario, str(seconds), *common, *extra])
                res.setdefault("scenario", scenario)
                res.setdefault("audio_s", seconds)
                results.append(res)
                print(f"  {scenario:9s} {seconds:>6.0f} s: {res}", file=sys.stderr, flush=True)
            if audio:
                Path(audio).unlink()
    estimate_skipped(results)
    print(f"\nencoder {args.layers} x {args.d_model} (ffn {4 * args.d_model}, {args.heads} heads, "
          f"left {args.left}, right {args.right}; {conf['truncated_params']:,} parameters), {args.threads} threads, "
          f"stream chunk {args.chunk_frames} frames")
    if "conformer" in args.scenarios:
        print(f"conformer: torchaudio Conformer {args.layers} x {args.d_model} (ffn {conf['ffn_dim']}, {args.heads} "
              f"heads, kernel {conf['kernel_size']}, full attention; {conf['conformer_params']:,} parameters), "
              f"same input, run up to {args.conformer_max_s:.0f} s")
    print()
    rows = [
        {"scenario": r["scenario"], "audio": f"{r['audio_s']:.0f} s",
         "seconds": "skipped" if r.get("skipped") else r.get("seconds", r.get("error")),
         "rtf": "-" if r.get("rtf") is None else r["rtf"],
         "peak_rss_mb": "-" if r.get("peak_rss_mb") is None else r["peak_rss_mb"]}
        for r in results
    ]
    print_table(rows, [("scenario", "scenario"), ("audio", "audio"), ("seconds", "wall s"), ("rtf", "RTF"),
                       ("peak_rss_mb", "peak RSS MB")])
    by = {(r["scenario"], r["audio_s"]): r for r in results}
    for seconds in args.durations:
        ours, peer = by.get(("offline", seconds), {}), by.get(("conformer", seconds), {})
        if ours.get("rtf") and peer.get("rtf"):
            print(f"conformer / offline at {seconds:.0f} s: time x{peer['rtf'] / ours['rtf']:.2f}, "
                  f"peak RSS x{peer['peak_rss_mb'] / ours['peak_rss_mb']:.2f}")
        elif peer.get("skipped"):
            est = peer.get("estimated_seconds")
            print(f"conformer at {seconds:.0f} s: skipped ({peer['skipped']})"
                  + (f"; estimated <= {est:.0f} s ({est / 3600:.1f} h) to run" if est else ""))
    payload = {"environment": environment(), "args": vars(args), "conformer": conf,
               "params": {"truncated": conf["truncated_params"], "conformer": conf["conformer_params"]},
               "results": results}
    path = write_json("encoder", payload, args.json)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
