"""``regbench grid`` (run a grid file's cells) and ``regbench leaderboard`` (tables from stored results)."""
from __future__ import annotations

import sys

import click

from .common import (data_set_option, device_option, emit_json, json_option, limit_option, log, mlflow_later_option,
                     parse_sets, progress, results_option, set_option, table)

GRID_COLUMNS = ["label", "dataset", "protocol", "seed", "status", "cmr_1px", "cmr_3px", "cmr_5px", "r_avg",
                "runtime_ms_median"]


@click.command("grid")
@click.argument("grid_file")
@click.option("--executor", type=click.Choice(["local", "submitit", "ray"]), default="local", show_default=True,
              help="where cells run: local subprocesses, SLURM job arrays (submitit) or a Ray cluster")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None, help="local: cells run at once (default 1)")
@click.option("--dry-run", is_flag=True, help="list the cells that would run; run nothing")
@results_option
@limit_option(what="pairs of each cell, spread evenly over its split (overrides the grid file's limit)")
@click.option("--methods", default=None, help="comma-separated subset of the grid's methods (names or labels)")
@set_option
@data_set_option
@click.option("--seed", "seeds", type=int, multiple=True, help="run only these seeds (repeatable; default: the grid's)")
@device_option
@click.option("--retry-failed", is_flag=True, help="run again the cells whose earlier run failed")
@click.option("--no-mlflow", is_flag=True, help="write the result records only")
@mlflow_later_option
@click.option("--worker-mlflow", is_flag=True, help="workers log their own runs (with a tracking server only)")
@click.option("--address", default=None, help="ray: address of the cluster to join (e.g. auto, ray://head:10001)")
@click.option("--profile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML of executor options (e.g. partition, gpus_per_task, timeout_min)")
@click.option("--opt", "opts", multiple=True, metavar="KEY=VALUE", help="executor option (repeatable)")
@click.option("--strict", is_flag=True,
              help="exit 1 when any cell failed (default: only when a worker crashed or a cell is invalid)")
@json_option
def grid_cmd(grid_file, executor, max_parallel, dry_run, results, limit, methods, sets, data_sets, seeds, device,
             retry_failed, no_mlflow, mlflow_later, worker_mlflow, address, profile, opts, strict, as_json) -> None:
    """Run a grid of cells (methods × datasets × protocols × seeds), skipping finished ones.

    Overrides given here (--limit, --set, --data-set, --seed, --device) apply to every cell.
    """
    from ..grid import executor_options, load_grid, run_grid, summary_rows
    from ..grid.executors import get_executor

    grid = load_grid(grid_file, limit=limit, methods=methods.split(",") if methods else None,
                     device=None if device == "auto" else device, sets=parse_sets(sets),
                     dataset_sets=parse_sets(data_sets), seeds=list(seeds) or None)
    extra = {"max_parallel": max_parallel} if executor == "local" and max_parallel else {}
    extra |= {"address": address} if executor == "ray" and address else {}
    options = executor_options(grid, executor, profile, parse_sets(opts) | extra)
    with progress(f"grid {grid.name}", unit="cell") as update:
        report = run_grid(grid, results, executor=get_executor(executor, **options), retry_failed=retry_failed,
                          log_mlflow=not no_mlflow, worker_mlflow=worker_mlflow, dry_run=dry_run,
                          echo=lambda m: log(m, as_json), progress=update, mlflow_later=mlflow_later)
    rows = summary_rows(grid, results)
    if as_json:
        emit_json(report.to_dict() | {"cells": rows})
    else:
        log(report.format())
        if not dry_run:
            log(table(rows, GRID_COLUMNS))
    if not report.complete or report.invalid or (strict and (report.failed or report.earlier_failed)):
        sys.exit(1)


@click.command("leaderboard")
@click.argument("name", required=False)
@results_option
@click.option("--out", default=None, help="output folder (default: leaderboards/)")
@limit_option(what="pairs the grid was run with (its --limit)")
@json_option
def leaderboard_cmd(name: str | None, results: str, out: str | None, limit: int | None, as_json: bool) -> None:
    """Regenerate leaderboards/NAME.md, .csv and plots from stored results (every grid when NAME is omitted)."""
    from ..grid.leaderboard import regenerate

    paths = regenerate(name, results, out, limit=limit)
    if as_json:
        return emit_json({"written": [str(p) for p in paths]})
    for path in paths:
        log(f"wrote {path}")
