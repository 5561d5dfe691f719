"""SLURM job arrays through submitit: one array task per grid task, one scheduler call per grid.

``cluster=None`` lets submitit pick SLURM when ``srun`` exists and local subprocesses otherwise;
``cluster="local"`` runs the same pickled jobs as local processes (how the tests run it). The
job folder and the results folder must be on a disk every node sees. Options come from
``--opt key=value`` or a profile YAML (``--profile``), e.g. ``partition: gpu``, ``gpus_per_task: 1``,
``timeout_min: 240``, ``array_parallelism: 16``, ``slurm_extra: {account: proj, qos: normal}``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..cells import run_cell


class SubmititExecutor:
    """Submit every task as one submitit ``map_array`` call and collect results as they complete."""

    def __init__(self, folder: str | Path | None = None, cluster: str | None = None, gpus_per_task: int = 0,
                 cpus_per_task: int = 2, mem_gb: float | None = None, timeout_min: int = 120, partition: str | None = None,
                 array_parallelism: int = 64, slurm_extra: dict[str, Any] | None = None, poll_s: float = 5.0) -> None:
        self.folder, self.cluster, self.poll_s = folder, cluster, poll_s
        self.parameters: dict[str, Any] = {
            "name": "regbench", "timeout_min": timeout_min, "gpus_per_node": gpus_per_task, "tasks_per_node": 1,
            "cpus_per_task": cpus_per_task, "mem_gb": mem_gb, "slurm_partition": partition,
            "slurm_array_parallelism": array_parallelism,
        }
        self.parameters |= {f"slurm_{k}": v for k, v in (slurm_extra or {}).items()}

    def run(self, tasks: list[Any], results_dir: Path, on_done: Any, mlflow_parent: str | None = None) -> None:
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder or Path(results_dir) / "grids" / "submitit" / "%j",
                                         cluster=self.cluster)
        executor.update_parameters(**{k: v for k, v in self.parameters.items() if v is not None})
        n = len(tasks)
        jobs = executor.map_array(run_cell, [t.cell.to_dict() for t in tasks], [str(results_dir)] * n,
                                  [t.shard for t in tasks], [mlflow_parent] * n)
        by_job = {id(job): task for job, task in zip(jobs, tasks)}
        for job in submitit.helpers.as_completed(jobs, poll_frequency=self.poll_s):
            try:
                outcome = job.result()
            except Exception as e:  # the job died: killed, timed out, node failure, unpicklable code
                outcome = {"status": "crashed", "error": f"submitit job {job.job_id}: {type(e).__name__}: "
                                                         f"{str(e).strip()[-1000:]}"}
            on_done(by_job[id(job)], outcome)
