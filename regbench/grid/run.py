"""Running a grid: the cells without a stored result go to an executor, finished ones are logged
to MLflow (one parent run per grid, one child per cell) by this process alone."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import config as cfg
from .. import store, tracking
from ..errors import ConfigError
from .cells import Cell, Grid, Task, cell_dir, read_result, run_cell
from .executors import LocalExecutor

OnDone = Callable[[Task, dict[str, Any]], None]


@dataclass
class GridReport:
    """What one ``run_grid`` call did, cell by cell."""

    grid: str
    n_cells: int
    skipped: list[Cell] = field(default_factory=list)
    ok: list[Cell] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)
    crashed: list[tuple[Cell, str]] = field(default_factory=list)
    invalid: list[tuple[Cell, str]] = field(default_factory=list)
    earlier_failed: list[tuple[Cell, str]] = field(default_factory=list)
    parent_run_id: str | None = None

    @property
    def complete(self) -> bool:
        """Every valid cell has a stored outcome (nothing left for a rerun to do)."""
        return not self.crashed

    def format(self) -> str:
        lines = [f"grid {self.grid}: {self.n_cells} cells — {len(self.ok)} ran ok, {len(self.failed)} failed, "
                 f"{len(self.crashed)} crashed, {len(self.skipped)} already done, {len(self.invalid)} invalid"]
        for title, items in (("failed (recorded; rerun with --retry-failed)", self.failed),
                             ("failed in an earlier run (skipped; --retry-failed runs them again)", self.earlier_failed),
                             ("crashed (no result; the next run of the grid runs them again)", self.crashed),
                             ("invalid (cannot be resolved)", self.invalid)):
            if items:
                lines.append(f"{title}:")
                lines += [f"  {c.id[:12]} {c.name}: {reason.splitlines()[0][:300]}" for c, reason in items]
        if self.parent_run_id:
            lines.append(f"MLflow parent run: {self.parent_run_id}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Counts and the cells of each outcome (``regbench grid --json``)."""
        named = lambda items: [{"cell_id": c.id, "name": c.name, "error": e} for c, e in items]  # noqa: E731
        return {"grid": self.grid, "n_cells": self.n_cells, "complete": self.complete,
                "parent_run_id": self.parent_run_id, "ok": [c.id for c in self.ok],
                "skipped": [c.id for c in self.skipped], "failed": named(self.failed), "crashed": named(self.crashed),
                "invalid": named(self.invalid), "earlier_failed": named(self.earlier_failed)}


def grid_hash(grid: Grid) -> str:
    return cfg.config_hash({"name": grid.name, "cells": [c.id for c in grid.cells]})


def mlflow_parent_run(grid: Grid, results_dir: str | Path) -> str:
    """The MLflow parent run of this grid: reused when an earlier run of the same cells exists."""
    tags = {"regbench.grid": grid.name, "regbench.grid_hash": grid_hash(grid), "regbench.grid_file": str(grid.path or "")}
    return tracking.parent_run(f"grid:{grid.name}", tags, "regbench.grid_hash", results_dir)


def _log_child(result_path: Path, results_dir: str | Path, parent: str) -> None:
    """Log a finished cell's record as a child of ``parent`` and store the MLflow run id in its result."""
    result = json.loads(result_path.read_text())
    record = result["record"]
    run_dir = Path(result["run_dir"])
    artifacts = [result_path.parent / "per_pair.csv", run_dir / "record.json", run_dir.parent / "config.json",
                 *sorted((run_dir.parent / "figures").glob("*.png"))]
    run_id = tracking.log_run(record, [a for a in artifacts if a.exists()], results_dir, parent_run_id=parent,
                              extra_tags={"regbench.cell_id": result["cell_id"]})
    result["mlflow_run_id"] = run_id
    store.atomic_write_json(result_path, result)


def _merge_shards(cell: Cell, shard_outcomes: list[dict[str, Any]], results_dir: str | Path) -> dict[str, Any]:
    """Score the merged prediction cache of a sharded cell (in this process; no method set-up)."""
    outcome = run_cell(cell.to_dict(), str(results_dir))
    path = cell_dir(results_dir, cell.id) / "result.json"
    if outcome["status"] == "ok":  # set-up time and memory of the shards, as one run would report them
        result = json.loads(path.read_text())
        summary = result["record"]["summary"]
        for k in ("load_s", "peak_mem_mb"):
            values = [o[k] for o in shard_outcomes if math.isfinite(o.get(k, math.nan))]
            summary[k] = max(values) if values else summary[k]
        result["record"]["predicted_now"] = sum(o.get("predicted_now", 0) for o in shard_outcomes)
        result["record"]["shards"] = len(shard_outcomes)
        store.atomic_write_json(path, result)
    return outcome


def run_grid(grid: Grid, results_dir: str | Path = "results", executor: Any = None, retry_failed: bool = False,
             log_mlflow: bool = True, worker_mlflow: bool = False, dry_run: bool = False,
             echo: Callable[[str], Any] = print, progress: Callable[[int, int], Any] | None = None,
             mlflow_later: bool = False) -> GridReport:
    """Run every cell of ``grid`` that has no stored result yet.

    Args:
        executor: an object with ``run(tasks, results_dir, on_done, mlflow_parent)``
            (``regbench.executors``); default: the local executor, one cell at a time.
        retry_failed: also run cells whose earlier run failed (raised).
        worker_mlflow: workers log their own runs (only sensible with a tracking server).
        dry_run: report what would run; run nothing.
        progress: called with (cells finished, cells to run) as cells end.
        mlflow_later: an unreachable tracking store does not stop the grid; the cells are logged
            by the next run of the grid once the store answers.
    """

    results_dir = Path(results_dir).resolve()
    if worker_mlflow and not tracking.tracking_uri(results_dir).startswith(("http://", "https://")):
        raise ConfigError("worker_mlflow needs a tracking server (MLFLOW_TRACKING_URI=http://…): a SQLite store is "
                          "written by the orchestrating process only")
    if log_mlflow and not dry_run and not tracking.check_store(results_dir, allow_unreachable=mlflow_later):
        log_mlflow = False  # results stay on disk; a later run of the grid logs every unlogged cell
    report = GridReport(grid.name, len(grid.cells))
    todo: list[Cell] = []
    unlogged: list[Path] = []
    seen: set[str] = set()
    for cell in grid.cells:
        if cell.id in seen:  # the same cell listed twice
            continue
        seen.add(cell.id)
        if cell.error:
            report.invalid.append((cell, cell.error))
            continue
        result = read_result(results_dir, cell)
        if result and (result["status"] == "ok" or not retry_failed):
            report.skipped.append(cell)
            if result["status"] != "ok":
                report.earlier_failed.append((cell, result["error"]))
            elif "mlflow_run_id" not in result:
                unlogged.append(cell_dir(results_dir, cell.id) / "result.json")
        else:
            todo.append(cell)
    if dry_run:
        for cell in todo:
            echo(f"would run {cell.id[:12]} {cell.name}" + (f" in {cell.shards} shards" if cell.shards > 1 else ""))
        echo(f"dry run: {len(todo)} of {len(grid.cells)} cells would run")
        return report
    parent = mlflow_parent_run(grid, results_dir) if log_mlflow and (todo or unlogged) else None
    report.parent_run_id = parent
    for path in unlogged if parent else []:  # finished by a run whose orchestrator was interrupted
        _log_child(path, results_dir, parent)

    def finish(cell: Cell, outcome: dict[str, Any]) -> None:
        if outcome["status"] == "ok":
            report.ok.append(cell)
            path = cell_dir(results_dir, cell.id) / "result.json"
            if parent and "mlflow_run_id" not in json.loads(path.read_text()):
                _log_child(path, results_dir, parent)
        elif outcome["status"] == "failed":
            report.failed.append((cell, outcome["error"]))
        else:
            report.crashed.append((cell, outcome["error"]))
        done = len(report.ok) + len(report.failed) + len(report.crashed)
        echo(f"[{done}/{len(todo)}] {outcome['status']}: {cell.name}"
             + (f" — {outcome['error'].splitlines()[0][:200]}" if outcome.get("error") else ""))
        if progress:
            progress(done, len(todo))

    shard_outcomes: dict[str, list[dict[str, Any]]] = {}

    def on_done(task: Task, outcome: dict[str, Any]) -> None:
        if task.shard is None:
            return finish(task.cell, outcome)
        outcomes = shard_outcomes.setdefault(task.cell.id, [])
        outcomes.append(outcome)
        if len(outcomes) == task.cell.shards:
            bad = [o for o in outcomes if o["status"] != "ok"]
            merged = bad[0] if bad else _merge_shards(task.cell, outcomes, results_dir)
            finish(task.cell, merged)

    if progress:
        progress(0, len(todo))
    tasks = [Task(c, (i, c.shards) if c.shards > 1 else None) for c in todo for i in range(max(c.shards, 1))]
    status = "KILLED"
    try:
        if tasks:
            (executor or LocalExecutor()).run(tasks, results_dir, on_done, parent if worker_mlflow else None)
        status = "FINISHED" if report.complete else "FAILED"
    finally:
        if parent:
                    tracking.end_run(parent, status, results_dir)
    return report


def summary_rows(grid: Grid, results_dir: str | Path) -> list[dict[str, Any]]:
    """One row per cell: its labels, status and headline metrics (the table printed after a grid)."""
    rows = []
    for cell in grid.cells:
        result = None if cell.error else read_result(results_dir, cell)
        status = "invalid" if cell.error else result["status"] if result else "not run"
        summary = (result.get("record") or {}).get("summary", {}) if result else {}
        label = cell.label + (f" ({cell.train_dataset})" if cell.train_dataset else "")
        rows.append({"label": label, "dataset": cell.dataset_label, "split": cell.split, "protocol": cell.protocol,
                     "seed": cell.seed, "status": status, "cell_id": cell.id[:12]}
                    | {k: summary.get(k) for k in ("cmr_1px", "cmr_3px", "cmr_5px", "r_avg", "runtime_ms_median")})
    return rows


def grid_results(grid: Grid, results_dir: str | Path) -> list[dict[str, Any]]:
    """For every cell of ``grid``: its stored result, or a ``missing`` / ``invalid`` entry (leaderboard input)."""
    import pandas as pd

    out = []
    for cell in grid.cells:
        result = None if cell.error else read_result(results_dir, cell)
        if result is None:
            result = {"cell_id": cell.id, "cell": cell.to_dict(), "status": "invalid" if cell.error else "missing",
                      "error": cell.error or "not run"}
        per_pair = cell_dir(results_dir, cell.id) / "per_pair.csv"
        result["per_pair"] = pd.read_csv(per_pair) if result["status"] == "ok" and per_pair.exists() else None
        out.append(result)
    return out


def executor_options(grid: Grid, name: str, profile: str | Path | None = None,
                     opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Options of executor ``name``: the grid's ``executor: {<name>: {...}}`` < a profile YAML < ``opts``."""
    options = dict((grid.spec.get("executor") or {}).get(name) or {})
    if profile:
        options |= yaml.safe_load(Path(profile).read_text()) or {}
    return options | (opts or {})
