"""Where a benchmark's numbers came from: the ``provenance`` block of every JSON under
``benchmarks/results/``. Standard library only (``results_table.py`` uses it without torch).

A block records the script and its arguments, the commit and whether the working tree was
clean, the CPU (``lscpu`` model name and its full flag list), and the load that OTHER processes
put on the machine while the script ran: the load average at the start and at the end, and
``other_cores``, the cores other processes kept busy on average (all busy CPU time from
/proc/stat minus this process's and its waited-for children's own CPU time, over the wall time
since this module was imported). ``results_table.py`` refuses a JSON whose block is missing or
incomplete (:func:`check`).
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

#: Keys every provenance block must have (``other_load`` must hold ``other_cores``).
REQUIRED = ("script", "commit", "clean", "cpu_model", "cpu_flags", "other_load")

#: Paths that may be modified in a "clean" tree: results and prose, not code. A run started
#: while RESULTS.md is being edited, or that writes its own JSON under benchmarks/results/,
#: measured committed code all the same.
DOC_PATHS = ("benchmarks/results/", "RESULTS.md", "README.md", "docs/")


def _busy_seconds() -> float | None:
    """CPU seconds all processes have been busy since boot (/proc/stat: all but idle and iowait)."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def loadavg() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


class LoadWindow:
    """Cores kept busy by other processes from construction to :meth:`other_cores`; also the
    commit and tree state at construction (what ran: a script may write tracked files, e.g.
    ``train_models.py`` exports the package's model files)."""

    def __init__(self) -> None:
        self.git = git_state()
        self.start_wall = time.perf_counter()
        self.start_busy = _busy_seconds()
        self.start_own = _own_seconds()
        self.start_loadavg = loadavg()

    def other_cores(self) -> float | None:
        wall = time.perf_counter() - self.start_wall
        busy = _busy_seconds()
        if busy is None or self.start_busy is None or wall <= 0:
            return None
        return round(max(0.0, (busy - self.start_busy) - (_own_seconds() - self.start_own)) / wall, 3)

    def record(self) -> dict[str, Any]:
        return {"loadavg_start": self.start_loadavg, "loadavg_end": loadavg(),
                "other_cores": self.other_cores(),
                "wall_s": round(time.perf_counter() - self.start_wall, 1)}


def git_state(repo: Path = REPO) -> tuple[str, bool, list[str]]:
    """(commit hash, clean, modified tracked paths) of ``repo``; ("unknown", False, []) without git.
    Clean: no tracked file modified outside :data:`DOC_PATHS`."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=20).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown", False, []
    modified = [line[3:] for line in status.splitlines() if line.strip()]
    clean = not [p for p in modified if not p.startswith(DOC_PATHS)]
    return commit, clean, modified


#: The window of this process: from the import of this module (scripts import it first thing).
PROCESS_WINDOW = LoadWindow()


def lscpu() -> dict[str, str]:
    """``lscpu``'s fields; ``{}`` where it cannot run."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def provenance(window: LoadWindow | None = None) -> dict[str, Any]:
    """The provenance block for a result written now; ``window``: the load window of the
    measurement (default: this whole process)."""
    window = window or PROCESS_WINDOW
    commit, clean, modified = window.git
    cpu = lscpu()
    script = Path(sys.argv[0]).resolve()
    try:
        script_name = script.relative_to(REPO).as_posix()
    except ValueError:
        script_name = script.as_posix()
    return {
        "script": script_name,
        "argv": sys.argv[1:],
        "commit": commit,
        "clean": clean,
        "modified": modified,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu.get("Model name", "unknown"),
        "cpu_flags": cpu.get("Flags", "").split(),
        "cores": os.cpu_count(),
        "other_load": window.record(),
    }


def missing(block: Any) -> list[str]:
    """What a provenance block lacks (empty: complete)."""
    if not isinstance(block, dict):
        return ["provenance"]
    out = [k for k in REQUIRED if k not in block or block[k] in (None, "", [], "unknown")]
    if "clean" in block and block["clean"] is None:
        out.append("clean")
    load = block.get("other_load")
    if isinstance(load, dict) and load.get("other_cores") is None:
        out.append("other_load.other_cores")
    return out


def check(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The provenance block of the JSON ``name``; raises ValueError naming what is missing, or
    if the tree was not clean (code modified: the commit does not say what ran)."""
    block = payload.get("provenance")
    lacking = missing(block)
    if lacking:
        raise ValueError(f"{name}: no usable provenance (missing {', '.join(lacking)}): rerun the script "
                         f"that writes it")
    if not block["clean"]:
        raise ValueError(f"{name}: measured on a modified tree ({', '.join(block.get('modified', []))}), "
                         f"not at commit {block['commit'][:10]}: rerun it on a clean checkout")
    return block
