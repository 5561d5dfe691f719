"""Where grid cells run: ``local`` (default, subprocesses), ``submitit`` (SLURM job arrays), ``ray``.

An executor has one method, ``run(tasks, results_dir, on_done, mlflow_parent)``: it runs every
:class:`~regbench.grid.cells.Task` through :func:`regbench.grid.cells.run_cell` and calls ``on_done(task,
outcome)`` in the calling process as each one ends, where ``outcome["status"]`` is ``ok``,
``failed`` (the cell raised; recorded) or ``crashed`` (the worker died: no result). A crash of one
task never stops the others. ``results_dir`` must be visible to every worker (a shared disk).
"""
from __future__ import annotations

from typing import Any

from .local import LocalExecutor

EXECUTORS = ("local", "submitit", "ray")


def get_executor(name: str, **options: Any) -> Any:
    """An executor by name; ``options`` are its constructor's keyword arguments."""
    if name == "local":
        return LocalExecutor(**options)
    if name == "submitit":
        from .submitit_exec import SubmititExecutor

        return SubmititExecutor(**options)
    if name == "ray":
        from .ray_exec import RayExecutor

        return RayExecutor(**options)
    raise ValueError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "LocalExecutor", "get_executor"]
