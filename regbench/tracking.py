"""MLflow logging: the only module that imports ``mlflow``.

The JSON record written beside the prediction cache is the source of truth; MLflow is an index
over records (one run per method, dataset, split, protocol, seed and config). Default store: a
SQLite file ``<results>/mlflow.db`` with artifacts under ``<results>/mlartifacts``, unless
``MLFLOW_TRACKING_URI`` is set (a server keeps its own artifact root). The store is checked
before any work (:func:`check_store`); a record that could not be logged is kept with
``mlflow_pending`` and logged later by :func:`log_pending` (``regbench log``).
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import urllib.error
import urllib.request
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from . import store
from .errors import StoreError

EXPERIMENT = "regbench"
CHECK_TIMEOUT_S = 5.0


def tracking_uri(results_dir: str | Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite store of the results folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_store(results_dir: str | Path, allow_unreachable: bool = False) -> bool:
    """Check, within seconds and before any work, that the tracking store can be written.

    Returns True when it can; False when it cannot and ``allow_unreachable`` (the caller keeps
    its records for :func:`log_pending`); else raises :class:`StoreError` saying what to do.
    """
    uri = tracking_uri(results_dir)
    problem = None
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=CHECK_TIMEOUT_S) as reply:
                problem = None if reply.status == 200 else f"its /health answered {reply.status}"
        except (urllib.error.URLError, OSError, ValueError) as e:
            problem = f"it does not answer ({getattr(e, 'reason', e)})"
        what = f"MLflow tracking server {uri}"
    elif (db := _sqlite_path(uri)) is not None:
        what = f"MLflow store {uri}"
        owned = db.parent == Path(results_dir).resolve()
        if owned:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                problem = f"its folder cannot be created ({e.strerror})"
        if problem is None and not db.parent.is_dir():
            problem = f"its folder {db.parent} does not exist (create it, or fix MLFLOW_TRACKING_URI)"
        elif problem is None and not os.access(db if db.exists() else db.parent, os.W_OK):
            problem = f"{db if db.exists() else db.parent} is not writable"
    else:
        return True
    if problem is None:
        return True
    if allow_unreachable:
        warnings.warn(f"{what}: {problem}; results stay on disk, log them later with `regbench log`", stacklevel=2)
        return False
    raise StoreError(f"{what} cannot be used: {problem}. Fix it, or pass --no-mlflow, or --mlflow-later to keep "
                     "results on disk and log them later with `regbench log`")


@lru_cache(maxsize=None)
def _initialised(uri: str) -> None:
    """Create the store's tables once, under a file lock, so concurrent first runs do not race."""
    from mlflow.tracking import MlflowClient

    db = _sqlite_path(uri)
    if db is None:
        MlflowClient(uri).search_experiments(max_results=1)
        return
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _experiment(results_dir: str | Path, name: str = EXPERIMENT) -> str:
    """Connect to the store of ``results_dir`` and return the id of experiment ``name`` (created
    with its artifacts under ``<results>/mlartifacts`` for a local store)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(results_dir)
    if _sqlite_path(uri) is not None and _sqlite_path(uri).parent == Path(results_dir).resolve():
        Path(results_dir).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    _initialised(uri)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (Path(results_dir).resolve() / "mlartifacts").as_uri() if _sqlite_path(uri) else None
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by another process
        return mlflow.get_experiment_by_name(name).experiment_id


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
    """The finite metrics (MLflow stores no inf; failures are ``n_failed`` / ``fail_rate``)."""
    return {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def _params(record: dict[str, Any]) -> dict[str, Any]:
    params = {k: record.get(k) for k in ("method", "dataset", "split", "protocol", "protocol_tag", "seed", "limit",
                                         "n_pairs", "config_hash", "device", "device_name", "weights_checksum",
                                         "train_dataset", "deformation_checksum")}
    params |= {f"config.{k}": v for k, v in _flatten(record["config"]).items()}
    params |= {f"dataset_config.{k}": v for k, v in _flatten(record.get("dataset_config") or {}).items()}
    params |= {f"protocol.{k}": v for k, v in (record.get("protocol_params") or {}).items()}
    params |= {f"version.{k}": v for k, v in record["versions"].items()}
    params |= {f"env.{k}": v for k, v in (record.get("environment") or {}).items()}
    params |= {"git_commit": (record.get("git") or {}).get("commit")}
    return {k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else v for k, v in params.items()}


def run_name(record: dict[str, Any]) -> str:
    """``method@dataset/split/protocol seed S #hash``: unique per run of a results folder."""
    return (f"{record['method']}@{record['dataset']}/{record['split']}/{record['protocol']} seed {record['seed']} "
            f"#{record['config_hash'][:8]}")


def log_run(
    record: dict[str, Any],
    artifacts: list[Path],
    results_dir: str | Path,
    experiment: str = EXPERIMENT,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Log one evaluation record (params, finite metrics, tags, the dataset as an input,
    artifacts); returns the MLflow run id."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    experiment_id = _experiment(results_dir, experiment)
    n_failed = int(record["summary"].get("n_failed", 0) or 0)
    tags = {"status": record["status"], "protocol_tag": record["protocol_tag"], "device_name": record["device_name"],
            "regbench.has_failures": str(n_failed > 0).lower()}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    tags |= extra_tags or {}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name(record), tags=tags) as run:
        mlflow.log_params(_params(record))
        mlflow.log_metrics(mlflow_metrics(record["summary"]))
        if record.get("deformation_manifest"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "source can be interpreted in multiple ways"
                source = resolve_dataset_source(str(record["deformation_manifest"]))
            name = f"{record['dataset']}/{record['split']}/{record['protocol_tag']}"
            mlflow.log_input(MetaDataset(source, name=name, digest=record["deformation_checksum"][:36]), context="test")
        for path in artifacts:
            mlflow.log_artifact(str(path))
        return run.info.run_id


def log_pending(results_dir: str | Path) -> list[str]:
    """Log every stored record marked ``mlflow_pending`` (idempotent: a logged record keeps its run
    id and is not logged again); returns the new run ids."""
    check_store(results_dir)
    ids = []
    for record in store.iter_records(results_dir):
        if not record.get("mlflow_pending") or record.get("mlflow_run_id"):
            continue
        run = Path(record.pop("run_dir"))
        record.pop("mlflow_pending")
        artifacts = [run / "per_pair.csv", run / "record.json", run.parent / "config.json",
                     *sorted((run.parent / "figures").glob("*.png"))]
        record["mlflow_run_id"] = log_run(record, [a for a in artifacts if a.exists()], results_dir)
        store.write_record(run, record)
        ids.append(record["mlflow_run_id"])
    return ids


@contextmanager
def training_run(name: str, params: dict[str, Any], results_dir: str | Path) -> Iterator[Callable[[dict[str, float], int], None]]:
    """An MLflow run for ``regbench train``: yields the ``log(metrics, step)`` callback of the trainer."""
    import mlflow

    experiment_id = _experiment(results_dir, f"{EXPERIMENT}-train")
    with mlflow.start_run(experiment_id=experiment_id, run_name=name):
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
    from mlflow.tracking import MlflowClient

    experiment_id = _experiment(results_dir)
    client = MlflowClient()
    found = client.search_runs([experiment_id], f"tags.`{key_tag}` = '{tags[key_tag]}'", max_results=1)
    if found:
        return found[0].info.run_id
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


def end_run(run_id: str, status: str, results_dir: str | Path) -> None:
    """Mark a run FINISHED, FAILED or KILLED."""
    from mlflow.tracking import MlflowClient

    _experiment(results_dir)
    MlflowClient().set_terminated(run_id, status)


def read_run_metrics(run_id: str, results_dir: str | Path) -> dict[str, float]:
    """The metrics MLflow stored for ``run_id`` (used by tests and leaderboards)."""
    import mlflow

    _experiment(results_dir)
    return dict(mlflow.get_run(run_id).data.metrics)
