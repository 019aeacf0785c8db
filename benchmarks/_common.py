"""Shared helpers for the benchmark scripts: isolated runs and workers, peak memory, the
command line measured in a fresh process, tables, JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import torch

from _provenance import provenance

OUT_DIR = Path(__file__).resolve().parent / "out"
_S = TypeVar("_S", bound="Sampler")


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far: ``VmHWM`` from /proc/self/status.

    Not ``ru_maxrss`` where VmHWM exists: on Linux a child's ru_maxrss starts at its parent's RSS
    at fork time, so a benchmark worker spawned by a big parent would read too high."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Sampler:
    """Calls :meth:`sample` every ``interval`` seconds in a daemon thread between ``__enter__``
    and ``__exit__``; subclasses keep what they measure in :meth:`sample`."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)

    def __enter__(self: _S) -> _S:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class PeakSampler(Sampler):
    """Samples RSS every ``interval`` seconds in a thread; ``peak`` is the highest seen.

    Used to measure what one call adds on top of the memory already held (its inputs):
    ``added = sampler.peak - rss_before``. ru_maxrss alone cannot do this, since the import of
    torch may have set a higher peak before the call.
    """

    def __init__(self, interval: float = 0.0005) -> None:
        super().__init__(interval)
        self.peak = rss_bytes()

    def sample(self) -> None:
        self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.sample()


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run_isolated(module_args: list[str], timeout: float | None = None) -> dict[str, Any]:
    """Run ``python <script> <args>`` in a fresh process; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, *module_args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_worker(script: str, worker: list[str], options: list[str], timeout: float) -> dict[str, Any]:
    """``python SCRIPT --worker WORKER... OPTIONS...`` in a fresh process (:func:`run_isolated`);
    ``{"error": "timed out after N min"}`` when it runs longer than ``timeout`` seconds."""
    try:
        return run_isolated([script, "--worker", *worker, *options], timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout / 60:.0f} min"}


def worker_options(args: argparse.Namespace, names: Iterable[str]) -> list[str]:
    """The options ``names`` (argparse dests: ``"d_model"``) of ``args`` as command-line options
    again, to pass the parent's settings on to a worker process of the same script:
    ``--d-model=256``, ``--smoke`` for a true flag, one ``--set=VALUE`` per item of a list;
    ``None``, ``False`` and empty lists are left out (the worker gets its own default)."""
    out: list[str] = []
    for name in names:
        value = getattr(args, name)
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            out += [f"{flag}={item}" for item in value]
        elif value is not None and value is not False:
            out.append(f"{flag}={value}")
    return out


#: The attention-shape options of the encoder benchmarks (:func:`add_attention_options`).
ATTENTION_OPTIONS = ("d_model", "heads", "left", "right")


def add_attention_options(parser: argparse.ArgumentParser) -> None:
    """``--d-model``, ``--heads`` and the ``--left`` / ``--right`` context (frames) of the
    attention under test; :data:`ATTENTION_OPTIONS` names them for :func:`worker_options`."""
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--left", type=int, default=32)
    parser.add_argument("--right", type=int, default=8)


#: Runs the command line (``speechattn.cli.main``) in this process, as ``python -m
#: speechattn.cli.main`` does, and when it exits writes ``{seconds, peak_rss_mb, exit_code,
#: torch_threads}`` as JSON to argv[1]: peak RSS is ``VmHWM`` of the whole process (Python,
#: torch import, model, the work), not ``ru_maxrss``, which on Linux starts from the parent's
#: RSS at fork. argv[2:] are the command's arguments. ``{prelude}`` runs first.
_CLI_WRAPPER = r"""
import json, os, sys, time
start = time.perf_counter()
stats_path = sys.argv[1]
sys.argv = ["speechattn", *sys.argv[2:]]
code = 0
try:
{prelude}
    from speechattn.cli.main import main
    main(prog_name="speechattn")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
finally:
    hwm = None
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    torch = sys.modules.get("torch")
    with open(stats_path, "w") as f:
        json.dump({"seconds": time.perf_counter() - start, "peak_rss_mb": hwm, "exit_code": code,
                   "torch_threads": torch.get_num_threads() if torch else None}, f)
sys.exit(code)
"""


@dataclass
class CliRun:
    """One run of :func:`run_cli`."""

    cmd: list[str]  #: the command as run: ``python -c WRAPPER STATS ARGS...``
    returncode: int
    stderr: str
    wall_s: float  #: the whole process (start-up and imports included), measured by the parent
    cpu_s: float  #: user + system CPU seconds of the process
    stats: dict[str, Any]  #: what the wrapper wrote (``{}`` if it wrote nothing)

    @property
    def args(self) -> list[str]:
        """The command line's arguments (what follows ``speechattn``)."""
        return self.cmd[4:]


def run_cli(args: list[str], stats_path: Path, prelude: str = "", env: dict[str, str] | None = None) -> CliRun:
    """``speechattn ARGS`` in a fresh process (``env`` added to this one's environment) through
    the wrapper above, which writes its statistics to ``stats_path``. ``prelude``: Python code
    the wrapper runs before the command (e.g. to patch a class attribute)."""
    stats_path.unlink(missing_ok=True)
    wrapper = _CLI_WRAPPER.replace("{prelude}", textwrap.indent(textwrap.dedent(prelude).strip() or "pass", "    "))
    cmd = [sys.executable, "-c", wrapper, str(stats_path), *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return CliRun(cmd, proc.returncode, proc.stderr, wall, cpu, stats)


def write_long_wav(path: str | os.PathLike[str], rate: int, frames: int, waves: Iterable[Any],
                   cut: bool = True) -> int:
    """Write the mono float arrays ``waves`` one after the other as a 16-bit PCM WAV at ``rate``
    until it holds ``frames`` samples, atomically (no half-written file at ``path``, whatever
    happens). ``cut``: the last wave is cut to fit; else waves are written whole and the file may
    run past ``frames``. Stops early if ``waves`` ends. Returns the samples written."""
    import soundfile as sf

    from speechattn.utils.files import atomic_write

    written = 0

    def write(tmp: str) -> None:
        nonlocal written
        with sf.SoundFile(tmp, "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV") as f:
            source = iter(waves)
            while written < frames:  # checked before taking the next wave: none is taken unwritten
                wave = next(source, None)
                if wave is None:
                    break
                if cut:
                    wave = wave[: frames - written]
                f.write(wave)
                written += len(wave)

    atomic_write(path, write)
    return written


def lscpu() -> dict[str, str]:
    """``lscpu``'s fields (``"Model name"``, ``"CPU(s)"``, ``"Flags"``...); ``{}`` where it cannot run."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            line = next(line for line in f if line.startswith("flags"))
        flags = sorted(f for f in line.split(":", 1)[1].split()
                       if f.startswith(("avx", "amx", "fma", "f16c", "sse4")))
    except (OSError, StopIteration):
        pass
    from speechattn.utils.device import cpu_has_native_bf16

    return {
        "cpu": cpu,
        "cpu_flags": flags,  # the SIMD subset of lscpu's flags: what decides kernel speed
        "native_bf16": cpu_has_native_bf16(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Print ``rows`` as a Markdown table; ``columns`` are (key, header) pairs."""
    header = "| " + " | ".join(h for _, h in columns) + " |"
    print(header)
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key, "")
            cells.append(f"{value:.4g}" if isinstance(value, float) else str(value))
        print("| " + " | ".join(cells) + " |")


def write_json(name: str, payload: dict[str, Any], path: str | os.PathLike[str] | None = None,
               indent: int = 2) -> Path:
    """Write the results to ``path`` or ``benchmarks/out/<name>.json``, atomically (never a
    half-written results file), creating the folder. Adds the ``provenance`` block (commit,
    clean tree, lscpu model and flags, other load over this process's run: ``_provenance.py``)
    unless the payload has one already."""
    from speechattn.utils.files import atomic_write_text

    out = Path(path) if path else OUT_DIR / f"{name}.json"
    payload = {**payload, "provenance": payload.get("provenance") or provenance()}
    atomic_write_text(out, json.dumps(payload, indent=indent) + "\n")
    return out


def logged_worker(log_path: Path, work: Callable[[], dict[str, Any]]) -> None:
    """Run ``work()`` in this (worker) process with everything it prints going to ``log_path``;
    its result goes to the real stdout as one JSON line for the parent. On an exception the
    traceback goes to the log, one line ``Error: message (see LOG)`` to the real stderr, and the
    process exits with status 1."""
    import logging
    import traceback

    real_out, real_err = os.dup(1), os.dup(2)
    with open(log_path, "w") as log_file:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001 - reported to the parent in one line
            traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(real_err, f"{type(exc).__name__}: {exc} (see {log_path})\n".encode())
            os._exit(1)
        result["log"] = str(log_path)
        sys.stdout.flush()
        sys.stderr.flush()
    os.write(real_out, (json.dumps(result) + "\n").encode())


def smoke_run(recipe: Path, overrides: list[str], out: Path) -> Path:
    """A tiny run of ``recipe`` with ``overrides`` for a benchmark's smoke check, trained once
    under ``out`` by the command line and trained again only when the recipe or overrides change."""
    import hashlib

    key = hashlib.sha1((recipe.read_text() + "\n".join(overrides)).encode()).hexdigest()[:10]
    run_dir = out / f"smoke_run-{key}"
    if (run_dir / "model.safetensors").exists():
        return run_dir
    cmd = [sys.executable, "-m", "speechattn.cli.main", "train", str(recipe), "--run-dir", str(run_dir)]
    for s in overrides:
        cmd += ["--set", s]
    print("training a tiny model for the smoke check ...", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return run_dir


def training_stepper(task: Any, recipe: Any, params: list[torch.nn.Parameter],
                     optimizer: torch.optim.Optimizer) -> Callable[[list[int]], None]:
    """One training step on a batch as the trainer takes it (bf16 autocast when the recipe asks,
    backward, gradient clipping, optimizer step), without its schedule, logging or checkpoints."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.train.precision == "bf16")

    def step(batch: list[int]) -> None:
        with autocast:
            loss, _ = task.training_step(batch, 0.5)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, recipe.train.grad_clip)
        optimizer.step()

    return step


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]), idle


def other_cpu_load(seconds: float = 1.0) -> float | None:
    """Busy cores (all processes) over ``seconds`` while this process sleeps: the load that
    other processes put on the machine right now. None where /proc/stat is missing."""
    try:
        total0, idle0 = _cpu_times()
        time.sleep(seconds)
        total1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 0.0 if total <= 0 else (os.cpu_count() or 1) * (1.0 - (idle1 - idle0) / total)


class OtherLoad:
    """Cores kept busy by OTHER processes between construction and :meth:`cores`: all busy CPU
    time (/proc/stat) minus this process's own CPU time, over the wall-clock time."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            total, idle = _cpu_times()
        except (OSError, ValueError, IndexError):
            return None
        own = os.times()
        return time.perf_counter(), (total - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system

    def cores(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        return max(0.0, ((end[1] - self.start[1]) - (end[2] - self.start[2])) / (end[0] - self.start[0]))
