"""The headline table of RESULTS.md, printed from the JSON files under benchmarks/results/.

    python benchmarks/results_table.py                  # print the table (Markdown)
    python benchmarks/results_table.py --time NAME -- COMMAND ...

The second form runs COMMAND and writes ``benchmarks/results/NAME.time.json``: the command, the
commit, its wall time, and the load average before and after (other jobs share the cores).
Standard library only.

Every JSON a row reads must carry provenance (``_provenance.py``: commit, clean tree, ``lscpu``
model and flags, the other load during the run), written by the script that measured it. A
training JSON written by ``train_time.py`` under ``--time NAME`` gets it from its
``NAME.time.json`` (commit, clean flag, load, lscpu) and its own ``environment`` (the SIMD flags).
The table is refused, naming the file, when one lacks it or was measured on a modified tree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import LoadWindow, check, provenance  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class MissingProvenance(ValueError):
    """A results file a row reads has no usable provenance."""


#: name -> provenance block of every JSON a row read (printed under the table).
USED: dict[str, dict] = {}


def load(name: str) -> dict:
    """The JSON ``name`` under results/, once its provenance is checked (MissingProvenance if not)."""
    if not (RESULTS / name).exists():
        raise MissingProvenance(f"{name}: no such file: run the command that writes it")
    payload = json.loads((RESULTS / name).read_text())
    block = payload.get("provenance") or derived_provenance(name, payload)
    try:
        check(name, {"provenance": block})
    except ValueError as exc:
        raise MissingProvenance(str(exc)) from None
    USED[name] = block
    return payload


def derived_provenance(name: str, payload: dict) -> dict | None:
    """The provenance of a training JSON written by ``train_time.py`` under ``results_table.py
    --time STEM``: its ``STEM.time.json``'s block (or, in time files from before the blocks
    existed, their commit, ``+dirty`` flag, CPU model and ``other_cores``) with the SIMD flags the
    JSON's ``environment`` lists. None when there is no such pair."""
    stem = name.removesuffix(".json")
    timing = RESULTS / f"{stem}.time.json"
    env = payload.get("environment")
    if not timing.exists() or not isinstance(env, dict) or "command" not in payload:
        return None
    record = json.loads(timing.read_text())
    if record.get("provenance"):
        return record["provenance"]
    commit = record.get("commit", "")
    return {"script": "benchmarks/train_time.py", "commit": commit.removesuffix("+dirty"),
            "clean": bool(commit) and not commit.endswith("+dirty"), "cpu_model": record.get("cpu"),
            "cpu_flags": env.get("cpu_flags"), "other_load": {"other_cores": record.get("other_cores")},
            "derived_from": timing.name}


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def busy_cpu_seconds() -> float:
    """CPU seconds all processes have been busy since boot (/proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def time_command(name: str, command: list[str]) -> None:
    """Run ``command``; record its wall time, the commit and the load around it. ``other_cores``:
    the cores kept busy by other processes during the run (all busy CPU time minus the command's)."""
    before, busy0, own0 = loadavg(), busy_cpu_seconds(), os.times()
    window = LoadWindow()
    start = time.perf_counter()
    rc = subprocess.call(command)
    wall = time.perf_counter() - start
    busy1, own1 = busy_cpu_seconds(), os.times()
    own = (own1.children_user + own1.children_system) - (own0.children_user + own0.children_system)
    record = {"command": " ".join(command), "commit": git_commit(), "returncode": rc,
              "wall_s": round(wall, 1), "loadavg_before": before, "loadavg_after": loadavg(),
              "other_cores": round(max(0.0, (busy1 - busy0) - own) / wall, 2),
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "provenance": provenance(window)}
    try:
        with open("/proc/cpuinfo") as f:
            record["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    (RESULTS / f"{name}.time.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS / (name + '.time.json')}: {wall:.1f} s, rc {rc}", file=sys.stderr)
    if rc != 0:
        raise SystemExit(rc)


def fmt(x: float) -> str:
    """Three significant digits; whole numbers from 1000 up."""
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def wall_of(name: str) -> str:
    """The wall time that ``--time NAME`` recorded; § when other processes kept a quarter of a core
    or more busy on average during the run (its timings are then inflated)."""
    record = json.loads((RESULTS / f"{name}.time.json").read_text())
    seconds = record["wall_s"]
    wall = f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
    return wall + (" §" if record["other_cores"] >= 0.25 else "")


# Each function gives rows of: task, metric, split, ours, baseline, command number (the numbered
# list under the table in RESULTS.md), wall time, JSON file.

def fsdd() -> list[list[str]]:
    name = "train_fsdd_avx2.json"
    m = load(name)["metrics"]
    return [["Speaker identification, FSDD", "accuracy % (best ckpt)", "held-out†",
             f"{m['dev']['accuracy']:.1f} (1 run)", "—", "7", wall_of("train_fsdd_avx2"), name]]


def vad() -> list[list[str]]:
    """Ours is in-domain (trained on the simulator, noises and labelling rule of this dev set);
    silero-vad and webrtcvad are zero-shot: said in the row, with silero at its default and at its
    best documented setting (the file peak-normalised first)."""
    name = "vad_baseline.json"
    r = load(name)
    acc, speed = r["accuracy"]["systems"], r["speed"]["systems"]
    wall = wall_of("vad_baseline")
    return [["Voice activity, simulated dev (ours in-domain, peers zero-shot)", "frame F1", "dev†",
             f"{acc['ours']['f1']:.3f} (1 run)",
             f"silero-vad {acc['silero']['f1']:.3f} default, {acc['silero-norm']['f1']:.3f} peak-normalised; "
             f"webrtcvad-0 {acc['webrtc-0']['f1']:.3f}", "8", wall, name],
            ["Voice activity, 1 h file", "seconds to label", "—", f"{speed['ours']['seconds']:.2f}",
             f"silero-vad {speed['silero']['seconds']:.1f}", "8", wall, name]]


def seed_pairs(name: str, task: str, metric: str, peer: str, digits: int, command: str) -> list[list[str]]:
    """The row of a same-harness comparison over seeds (``seed_summary.py``'s JSON): mean ± sd of
    ours and of the peer, at the runs' step count."""
    r = load(name)
    s, n, ours, base = r["summary"], r["summary"]["ratio"]["n"], r["ours"], r["baseline"]
    steps = r["runs"][0]["steps"][ours]
    return [[f"{task}, {steps} steps (same harness)", f"{metric}, mean ± sd", "dev†",
             f"{s[ours]['mean']:.{digits}f} ± {s[ours]['sd']:.{digits}f} ({n} seeds)",
             f"{peer} {s[base]['mean']:.{digits}f} ± {s[base]['sd']:.{digits}f}", command, "n/r", name]]


def ctc() -> list[list[str]]:
    """Ours against torchaudio's Conformer of the same size, same harness, several seeds."""
    return seed_pairs("asr_seeds.json", "CTC phones", "PER %", "Conformer", 1, "9")


def speaker() -> list[list[str]]:
    """Ours against SpeechBrain's ECAPA-TDNN, same harness and steps, several seeds."""
    return seed_pairs("speaker_seeds.json", "Speaker verification", "EER %", "ECAPA-TDNN", 2, "10")


def attention() -> list[list[str]]:
    name = "attention.json"
    t = {row["T"]: row for row in load(name)["table"]}
    mid, long, wall = t[32000], t[128000], wall_of("attention")
    return [["Attention, T = 32k", "ms per call", "—", fmt(mid["truncated_ms"]),
             f"full SDPA {fmt(mid['full_ms'])}, band-mask SDPA {fmt(mid['band_ms'])}", "2", wall, name],
            ["Attention, T = 32k", "MB added per call", "—", fmt(mid["truncated_mb"]),
             f"full SDPA {fmt(mid['full_mb'])}, band-mask SDPA {fmt(mid['band_mb'])}", "2", wall, name],
            ["Attention, T = 128k", "ms / MB added", "—", f"{fmt(long['truncated_ms'])} / {fmt(long['truncated_mb'])}",
             "— (SDPA not run)", "2", wall, name]]


def encoder() -> list[list[str]]:
    """Ours against torchaudio's Conformer of about our size on the same 10-minute input (one
    forward pass each); at 1 h ours (the Conformer's full attention is not run there)."""
    name = "encoder.json"
    data = load(name)
    r = {(x["scenario"], x["audio_s"]): x for x in data["results"]}
    offline, chunked, file, wall = r[("offline", 3600)], r[("chunked", 3600)], r[("file", 3600)], wall_of("encoder")
    ours10, conf10 = r[("offline", 600)], r[("conformer", 600)]
    params = data["params"]
    return [[f"Encoder 6 x 256 ({params['truncated'] / 1e6:.2f} M), 10 min input, one forward pass",
             "RTF / peak RSS MB", "—", f"{ours10['rtf']:.4f} / {ours10['peak_rss_mb']:.0f}",
             f"torchaudio Conformer ({params['conformer'] / 1e6:.2f} M) {conf10['rtf']:.4f} / "
             f"{conf10['peak_rss_mb']:.0f}", "3", wall, name],
            ["Encoder 6 x 256, 1 h whole input", "RTF / peak RSS MB", "—",
             f"{chunked['rtf']:.4f} / {chunked['peak_rss_mb']:.0f}",
             f"one forward pass {offline['rtf']:.4f} / {offline['peak_rss_mb']:.0f}; Conformer not run (O(T²))",
             "3", wall, name],
            ["Encoder, 1 h WAV streamed", "RTF / peak RSS MB", "—", f"{file['rtf']:.4f} / {file['peak_rss_mb']:.0f}",
             "—", "3", wall, name]]


def reliability() -> list[list[str]]:
    kr = load("kill_resume.json")
    same = sum(1 for r in kr["runs"] if r["identical"])
    rows = [["kill -9, then resume", "bit-identical runs", "—", f"{same}/{len(kr['runs'])}", "—", "5",
             f"{kr['uninterrupted_seconds']:.0f} s‡", "kill_resume.json"]]
    im = {(r["command"], r["input"]): r for r in load("inference_memory.json")["rows"]}
    embed, whole, label = (im[("embed", "4 h file, 5-min windows")],
                           im[("embed", "0.5 h file, whole-file path (before)")], im[("label", "4 h file")])
    rows.append(["`embed`, 4 h file", "peak RSS MB", "—", f"{embed['peak_rss_mb']:.0f}",
                 f"whole file, 0.5 h {whole['peak_rss_mb']:.0f}", "6", f"{embed['wall_s']:.0f} s‡",
                 "inference_memory.json"])
    rows.append(["`label`, 4 h file", "peak RSS MB", "—", f"{label['peak_rss_mb']:.0f}", "—", "6",
                 f"{label['wall_s']:.0f} s‡", "inference_memory.json"])
    return rows


def shipped() -> list[list[str]]:
    """One row per model shipped in the package (benchmarks/train_models.py: `make models`)."""
    name = "models.json"
    models = load(name)["models"]
    parity = load("model_parity.json")["models"]
    rows = []
    # task -> (metric, key, format, scale): PER is stored as a fraction, EER in percent
    shown = {"speaker": ("EER %", "eer", "{:.2f}", 1), "labeling": ("frame F1 (simulated)", "f1", "{:.3f}", 1),
             "frame_labels": ("frame F1 (simulated)", "f1", "{:.3f}", 1), "ctc": ("PER %", "per", "{:.1f}", 100)}
    for model, r in models.items():
        label, key, form, scale = shown[r["task"]]
        size = f"{r['bytes'] / 1e6:.1f} MB fp16"
        value = form.format(scale * (parity[model]["float16"] if model in parity else r["dev"])[key])
        ref = f"fp32 {form.format(scale * parity[model]['float32'][key])}" if model in parity else "—"
        rows.append([f"Shipped model `{model}` ({size})", label, "dev†", f"{value} (1 run)", ref, "1",
                     wall_of(f"model_{model}"), f"{name}, model_parity.json"])
    return rows


HEADER = ["Task", "Metric", "Split", "Ours", "Baseline, same run", "Cmd", "Wall", "JSON in benchmarks/results/"]


SECTIONS = [shipped, fsdd, speaker, vad, ctc, attention, encoder, reliability]


def print_table() -> None:
    """Print the table; refuse it (exit 1, naming each file) if a row's JSON lacks provenance."""
    rows, refused = [], []
    for section in SECTIONS:
        try:
            rows.extend(section())
        except MissingProvenance as exc:
            refused.append(str(exc))
    if refused:
        raise SystemExit("results_table.py: refused:\n  " + "\n  ".join(refused))
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "|".join("---" for _ in HEADER) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print_provenance()


#: The flags that decide kernel speed, shown per JSON (the block holds lscpu's full list).
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def print_provenance() -> None:
    """Where each JSON the table read came from: commit, script, CPU, other load."""
    print("\n| JSON | commit | script | date (UTC) | CPU | SIMD | other cores |")
    print("|---|---|---|---|---|---|---|")
    for name, block in sorted(USED.items()):
        flags = " ".join(f for f in SHOWN_FLAGS if f in block["cpu_flags"]) or "none of " + "/".join(SHOWN_FLAGS)
        date = (block.get("date") or "n/r")[:16].replace("T", " ")
        load = block["other_load"]["other_cores"]
        commit = block["commit"][:7]
        if "runs" in block:  # a summary of runs (seed_summary.py): where and how the runs ran
            load = max(block["runs"]["other_cores"])
            commit = f"{block['runs']['commit'][:7]} (runs; summary {commit})"
        print(f"| {name} | {commit} | {block['script'].removeprefix('benchmarks/')} | {date} | "
              f"{block['cpu_model']} | {flags} | {load:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time", metavar="NAME", help="run COMMAND and write results/NAME.time.json")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... (with --time)")
    args = parser.parse_args()
    if args.time:
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("--time needs a command after --")
        time_command(args.time, command)
        return
    print_table()


if __name__ == "__main__":
    main()
