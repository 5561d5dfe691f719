"""The default executor: each task in its own Python subprocess, up to ``max_parallel`` at once.

A subprocess per task isolates cells: a segfault, an out-of-memory kill or a hung native library
ends only that cell. Worker output goes to ``<results>/grids/logs/<task>.log``; the tail of that
log is the reason reported for a crashed task.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LOG_TAIL_LINES = 5


def log_tail(path: Path, n: int = LOG_TAIL_LINES) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return " | ".join(line.strip() for line in lines[-n:] if line.strip())


def exit_reason(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory, or killed by a user or the scheduler)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {returncode} without a result"


class LocalExecutor:
    """Run tasks as local subprocesses (``python -m regbench.grid.executors.worker``)."""

    def __init__(self, max_parallel: int = 1, poll_s: float = 0.1) -> None:
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.max_parallel, self.poll_s = max_parallel, poll_s

    def run(self, tasks: list[Any], results_dir: Path, on_done: Any, mlflow_parent: str | None = None) -> None:
        logs = Path(results_dir) / "grids" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        pending = list(tasks)
        running: dict[subprocess.Popen, tuple[Any, Path, Path]] = {}
        try:
            while pending or running:
                while pending and len(running) < self.max_parallel:
                    task = pending.pop(0)
                    task_file, log_file, outcome_file = (logs / f"{task.key}.{ext}"
                                                         for ext in ("task.json", "log", "outcome.json"))
                    outcome_file.unlink(missing_ok=True)
                    task_file.write_text(json.dumps({"cell": task.cell.to_dict(), "shard": task.shard,
                                                     "mlflow_parent": mlflow_parent}))
                    with open(log_file, "w") as log:
                        proc = subprocess.Popen(
                            [sys.executable, "-m", "regbench.grid.executors.worker", str(task_file), str(results_dir),
                             str(outcome_file)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                    running[proc] = (task, log_file, outcome_file)
                for proc in [p for p in running if p.poll() is not None]:
                    task, log_file, outcome_file = running.pop(proc)
                    if outcome_file.exists():
                        outcome = json.loads(outcome_file.read_text())
                    else:
                        tail = log_tail(log_file)
                        reason = exit_reason(proc.returncode) + (f": {tail}" if tail else "")
                        outcome = {"status": "crashed", "error": reason}
                    on_done(task, outcome)
                time.sleep(self.poll_s)
        finally:  # interrupted: stop the workers still running (their finished pairs stay cached)
            for proc in running:
                proc.terminate()
            for proc in running:
                proc.wait()
