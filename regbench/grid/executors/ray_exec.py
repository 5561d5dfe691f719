"""Ray: one remote task per grid task, each asking for ``num_gpus`` GPUs.

Joins an existing cluster with ``address`` (``"auto"``, ``"ray://head:10001"``); without an address
and without a running Ray session it starts a local one and stops it at the end. The results
folder must be on a disk every node sees. ``num_gpus=None`` asks for one GPU per task when the
cluster has GPUs and none otherwise (a fractional value packs several cells on one GPU).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..cells import run_cell


class RayExecutor:
    def __init__(self, address: str | None = None, num_gpus: float | None = None, num_cpus: float = 1,
                 max_retries: int = 0) -> None:
        self.address, self.num_gpus, self.num_cpus, self.max_retries = address, num_gpus, num_cpus, max_retries

    def run(self, tasks: list[Any], results_dir: Path, on_done: Any, mlflow_parent: str | None = None) -> None:
        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, include_dashboard=False)
        try:
            gpus = self.num_gpus if self.num_gpus is not None else float(ray.cluster_resources().get("GPU", 0) >= 1)
            remote = ray.remote(run_cell).options(num_gpus=gpus, num_cpus=self.num_cpus, max_retries=self.max_retries)
            refs = {remote.remote(t.cell.to_dict(), str(results_dir), t.shard, mlflow_parent): t for t in tasks}
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    task = refs.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as e:  # worker died (killed, out of memory) or the task could not run
                        outcome = {"status": "crashed", "error": f"ray task: {type(e).__name__}: {str(e).strip()[-1000:]}"}
                    on_done(task, outcome)
        finally:
            if started:
                ray.shutdown()
