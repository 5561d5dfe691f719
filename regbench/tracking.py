"""MLflow logging: the only module that imports ``mlflow``.

The JSON record written beside the prediction cache is the source of truth; MLflow is an index
over records (one run per method, dataset, split, protocol and seed). Default store: a SQLite
file under the results folder, unless ``MLFLOW_TRACKING_URI`` is set.
"""
from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

EXPERIMENT = "regbench"


def tracking_uri(results_dir: str | Path) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    path = Path(results_dir).resolve() / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def mlflow_metrics(summary: dict[str, float]) -> dict[str, float]:
    """MLflow stores no inf: infinite values are logged as a large sentinel, NaN is dropped."""
    return {k: (1e9 if math.isinf(v) else float(v)) for k, v in summary.items() if not math.isnan(v)}


def log_run(
    record: dict[str, Any],
    artifacts: list[Path],
    results_dir: str | Path,
    experiment: str = EXPERIMENT,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Log one evaluation record (params, metrics, tags, artifacts); returns the MLflow run id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(results_dir))
    mlflow.set_experiment(experiment)
    params = {k: record[k] for k in ("method", "dataset", "split", "protocol", "seed", "config_hash", "device")}
    params |= {f"config.{k}": v for k, v in _flatten(record["config"]).items()}
    params |= {f"version.{k}": v for k, v in record["versions"].items()}
    params |= {"weights_checksum": record.get("weights_checksum"), "git_commit": record.get("git_commit")}
    params = {k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else v for k, v in params.items()}
    tags = {"status": record["status"], "protocol_tag": record["protocol_tag"], "device_name": record["device_name"]}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    tags |= extra_tags or {}
    name = f"{record['method']}@{record['dataset']}/{record['split']}/{record['protocol']}"
    with mlflow.start_run(run_name=name, tags=tags) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(mlflow_metrics(record["summary"]))
        for path in artifacts:
            mlflow.log_artifact(str(path))
        return run.info.run_id


@contextmanager
def training_run(name: str, params: dict[str, Any], results_dir: str | Path) -> Iterator[Callable[[dict[str, float], int], None]]:
    """An MLflow run for ``regbench train``: yields the ``log(metrics, step)`` callback of the trainer."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(results_dir))
    mlflow.set_experiment(f"{EXPERIMENT}-train")
    with mlflow.start_run(run_name=name):
        flat = {k: json.dumps(v) if isinstance(v, (list, tuple)) else v for k, v in _flatten(params).items()}
        mlflow.log_params(flat)
        yield lambda metrics, step: mlflow.log_metrics(mlflow_metrics(metrics), step=step)


def log_training_outputs(out_dir: Path, best: Path) -> None:
    """Attach the curves and run description to the active training run, and where the weights are."""
    import mlflow

    for name in ("curves.csv", "run.json"):
        if (out_dir / name).exists():
            mlflow.log_artifact(str(out_dir / name))
    mlflow.set_tag("regbench.best_weights", str(best.resolve()))


def parent_run(name: str, tags: dict[str, str], key_tag: str, results_dir: str | Path) -> str:
    """The id of the run tagged ``key_tag = tags[key_tag]`` (reused on resume), else a new one."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(results_dir))
    experiment = mlflow.set_experiment(EXPERIMENT)
    client = MlflowClient()
    found = client.search_runs([experiment.experiment_id], f"tags.`{key_tag}` = '{tags[key_tag]}'", max_results=1)
    if found:
        return found[0].info.run_id
    return client.create_run(experiment.experiment_id, run_name=name, tags=tags).info.run_id


def end_run(run_id: str, status: str, results_dir: str | Path) -> None:
    """Mark a run FINISHED, FAILED or KILLED."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(results_dir))
    MlflowClient().set_terminated(run_id, status)


def read_run_metrics(run_id: str, results_dir: str | Path) -> dict[str, float]:
    """The metrics MLflow stored for ``run_id`` (used by tests and leaderboards)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(results_dir))
    return dict(mlflow.get_run(run_id).data.metrics)
