"""``python -m regbench.grid.executors.worker TASK.json RESULTS OUTCOME.json``: run one task in this process."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ...store import atomic_write_json
from ..cells import run_cell


def main(argv: list[str]) -> int:
    task_path, results_dir, outcome_path = argv
    task = json.loads(Path(task_path).read_text())
    shard = tuple(task["shard"]) if task["shard"] else None
    outcome = run_cell(task["cell"], results_dir, shard, task.get("mlflow_parent"))  # type: ignore[arg-type]
    atomic_write_json(Path(outcome_path), outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
