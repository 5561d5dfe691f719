"""``regbench run`` (one method on one dataset split) and ``regbench demo`` (the README's first command)."""
from __future__ import annotations

import click

from .common import (SUMMARY_COLUMNS, data_set_option, dataset_option, dataset_sets, device_option, emit_json,
                     json_option, limit_option, log, method_option, mlflow_later_option, parse_sets, progress,
                     protocol_option, results_option, root_option, seed_option, set_option, split_option, table)


@click.command()
@method_option()
@dataset_option()
@root_option
@split_option
@protocol_option
@limit_option()
@set_option
@data_set_option
@results_option
@device_option
@seed_option()
@click.option("--workers", default=0, show_default=True, type=click.IntRange(min=0),
              help="DataLoader worker processes reading pairs")
@click.option("--no-mlflow", is_flag=True, help="do not log to MLflow (the JSON record is still written)")
@mlflow_later_option
@click.option("--retime", is_flag=True, help="predict every pair again on this device (runtimes from one device)")
@json_option
def run(method, dataset, root, split, protocol, limit, sets, data_sets, results, device, seed, workers, no_mlflow,
        mlflow_later, retime, as_json) -> None:
    """Evaluate one method on one dataset split and print its summary."""
    from ..api import evaluate

    with progress(f"{method} on {dataset}/{split}") as update:
        result = evaluate(method, dataset, split, protocol, device=device, limit=limit, sets=parse_sets(sets),
                          dataset_sets=dataset_sets(data_sets, root), results_dir=results, log_mlflow=not no_mlflow,
                          mlflow_later=mlflow_later, seed=seed, num_workers=workers, progress=update, retime=retime)
    if as_json:
        return emit_json(result.record | {"run_dir": str(result.run_dir)})
    log(table([result.record | result.summary], SUMMARY_COLUMNS))
    for note in result.record.get("warnings") or []:
        log(f"warning: {note}")
    log(f"per-pair table and record: {result.run_dir}")
    if "mlflow_run_id" in result.record:
        log(f"MLflow run: {result.record['mlflow_run_id']}")
    elif result.record.get("mlflow_pending"):
        log("MLflow: not logged (store unreachable); `regbench log` logs it later")


@click.command("log")
@results_option
@json_option
def log_cmd(results: str, as_json: bool) -> None:
    """Log to MLflow every stored run record that could not be logged when it was made (idempotent)."""
    from ..tracking import log_pending

    ids = log_pending(results)
    if as_json:
        return emit_json({"logged": ids})
    log(f"logged {len(ids)} run(s) to MLflow")


@click.command()
@results_option
@limit_option(default=50, what="pairs per method, spread over the synthetic test split")
@click.option("--no-mlflow", is_flag=True, help="do not log to MLflow")
@json_option
def demo(results: str, limit: int | None, no_mlflow: bool, as_json: bool) -> None:
    """Evaluate the weight-free methods on the embedded synthetic test split and print the table."""
    from ..api import demo as run_demo, weight_free_methods

    names = weight_free_methods()
    with progress("demo", unit="method", total=len(names)) as update:
        rows = run_demo(results_dir=results, limit=limit, log_mlflow=not no_mlflow,
                        echo=lambda m: log(m, as_json), progress=update)
    if as_json:
        return emit_json(rows)
    log(table(rows, SUMMARY_COLUMNS))
