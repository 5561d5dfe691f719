"""``regbench grid`` and ``regbench leaderboard``: thin click layers over ``grid`` and ``leaderboard``."""
from __future__ import annotations

import sys
from typing import Any

import click

from .cli_common import parse_cli_sets


def executor_options(profile: str | None, opts: tuple[str, ...], grid_spec: dict[str, Any], name: str) -> dict[str, Any]:
    """Executor options: the grid's ``executor: {<name>: {...}}`` < a profile YAML < ``--opt key=value``."""
    import yaml

    options = dict((grid_spec.get("executor") or {}).get(name) or {})
    if profile:
        with open(profile) as f:
            options |= yaml.safe_load(f) or {}
    options |= parse_cli_sets(opts)
    return options


@click.command("grid")
@click.argument("grid_file")
@click.option("--executor", type=click.Choice(["local", "submitit", "ray"]), default="local", show_default=True)
@click.option("--max-parallel", type=int, default=None, help="local: cells run at once (default 1)")
@click.option("--dry-run", is_flag=True, help="list the cells that would run; run nothing")
@click.option("--results", default="results", show_default=True)
@click.option("--limit", type=int, default=None, help="first N pairs of each split (overrides the grid)")
@click.option("--methods", default=None, help="comma-separated subset of the grid's methods (names or labels)")
@click.option("--device", default=None, help="override the grid's device (auto | cpu | cuda)")
@click.option("--retry-failed", is_flag=True, help="run again the cells whose earlier run failed")
@click.option("--no-mlflow", is_flag=True, help="write the result records only")
@click.option("--worker-mlflow", is_flag=True, help="workers log their own runs (with a tracking server only)")
@click.option("--address", default=None, help="ray: address of the cluster to join (e.g. auto, ray://head:10001)")
@click.option("--profile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML of executor options (e.g. partition, gpus_per_task, timeout_min)")
@click.option("--opt", "opts", multiple=True, help="executor option key=value (repeatable)")
@click.option("--strict", is_flag=True, help="exit 1 when any cell failed (default: only when a worker crashed)")
def grid_cmd(grid_file, executor, max_parallel, dry_run, results, limit, methods, device, retry_failed, no_mlflow,
             worker_mlflow, address, profile, opts, strict) -> None:
    """Run a grid of cells (methods × datasets × protocols × seeds), skipping finished ones."""
    from .executors import get_executor
    from .grid import GridError, load_grid, run_grid

    try:
        grid = load_grid(grid_file, limit=limit, methods=methods.split(",") if methods else None, device=device)
    except GridError as e:
        raise click.UsageError(str(e)) from e
    options = executor_options(profile, opts, grid.spec, executor)
    if executor == "local" and max_parallel:
        options["max_parallel"] = max_parallel
    if executor == "ray" and address:
        options["address"] = address
    report = run_grid(grid, results, executor=get_executor(executor, **options), retry_failed=retry_failed,
                      log_mlflow=not no_mlflow, worker_mlflow=worker_mlflow, dry_run=dry_run, echo=click.echo)
    click.echo(report.format())
    if not report.complete or (strict and (report.failed or report.earlier_failed or report.invalid)):
        sys.exit(1)


@click.command("leaderboard")
@click.argument("name", required=False)
@click.option("--results", default="results", show_default=True)
@click.option("--out", default=None, help="output folder (default: leaderboards/)")
@click.option("--limit", type=int, default=None, help="the --limit the grid was run with")
def leaderboard_cmd(name: str | None, results: str, out: str | None, limit: int | None) -> None:
    """Regenerate leaderboards/NAME.md, .csv and plots from stored results (every grid when NAME is omitted)."""
    from .grid import leaderboards_dir
    from .leaderboard import regenerate

    names = [name] if name else sorted(p.stem for p in leaderboards_dir().glob("*.yaml") if p.stem != "reported")
    for n in names:
        for path in regenerate(n, results, out, limit=limit):
            click.echo(f"wrote {path}")
