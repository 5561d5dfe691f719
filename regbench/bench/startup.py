"""``regbench bench startup``: how long the command line takes to answer (whole processes)."""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

#: commands that must answer fast (no torch, pandas or MLflow imported before a verb runs)
COMMANDS = (("--help",), ("list", "methods"), ("data", "info", "--dataset", "sen1_2"))


def bench_startup(repeats: int = 7, echo: Callable[[str], Any] = print) -> dict[str, float]:
    """Median wall time (s) of each of :data:`COMMANDS` over ``repeats`` runs after one warm-up."""
    exe = shutil.which("regbench")
    prefix = [exe] if exe else [sys.executable, "-m", "regbench"]
    out: dict[str, float] = {}
    echo(f"regbench start-up: median of {repeats} runs after a warm-up (s); floor 0.5 s")
    for args in COMMANDS:
        times = []
        for k in range(repeats + 1):
            t0 = time.perf_counter()
            subprocess.run([*prefix, *args], check=True, capture_output=True)
            if k:
                times.append(time.perf_counter() - t0)
        name = "regbench " + " ".join(args)
        out[name] = statistics.median(times)
        echo(f"  {name:<40} {out[name]:6.3f}  (min {min(times):.3f}, max {max(times):.3f})")
    return out
