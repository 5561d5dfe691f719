"""``evaluate``: predict (cached), then score — the library call behind ``regbench run``.

1. Resolve the method and dataset by name, their configs and the split's pair ids (``limit``
   spreads a subset evenly over the split).
2. Read (or create once) the fixed deformation manifest of (dataset, split, protocol).
3. Find the prediction cache: its key hashes the method's class, resolved config and weights'
   checksum, the dataset's name, resolved config and fingerprint (the resolved root of a copy on
   disk), the protocol version, the seed and the file format. A cached pair is reused only if it
   was made on the same deformation and the same input files (sizes and times); an unreadable
   one is recomputed with a warning.
4. Predict every other pair: load, deform the SAR image, time ``register`` alone (warm-up
   excluded, GPU synchronised), write the prediction atomically. Anything a method raises or
   returns wrongly fails that pair with its reason; the run goes on.
5. Score every pair, and write the per-pair table and the JSON record into the folder of this
   pair set (another ``limit`` never overwrites it); an unchanged cached rerun writes nothing.
   Log the record to MLflow.
"""
from __future__ import annotations

import datetime as dt
import math
import subprocess
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from . import __version__, config, device as dev, geometry, metrics, registry, store, tracking, viz
from .datasets.loader import pair_loader
from .errors import ConfigError, MethodError, RegbenchError, StoreError
from .protocol import Protocol, deformation_matrix, get_protocol
from .types import Pair, Prediction

N_FIGURES = 2  # pairs per run that get a before/after overlay PNG
#: record fields that may differ between two runs with the same results
VOLATILE = ("created", "predicted_now", "mlflow_run_id", "environment", "git", "warnings", "timing_source",
            "mlflow_pending")


@dataclass
class RunResult:
    """What ``evaluate`` returns: the JSON record, the per-pair table and where they live."""

    record: dict[str, Any]
    table: pd.DataFrame
    run_dir: Path

    @property
    def summary(self) -> dict[str, float]:
        return self.record["summary"]


def git_state() -> dict[str, Any]:
    """The commit regbench runs from and whether its work tree has changes (None outside a checkout)."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if commit.returncode:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _register(method: Any, pair: Pair, device: torch.device) -> tuple[Prediction, float]:
    """Run and time one ``register`` call; exceptions and bad outputs become failed predictions."""
    timer = dev.Timer(device)
    try:
        with timer:
            pred = method.register(pair.for_method())
        if not isinstance(pred, Prediction):
            pred = Prediction.failure(f"register returned {type(pred).__name__}, not a Prediction")
        return pred.validate(pair.shape), timer.ms
    except (Exception, SystemExit) as e:  # a crashing method fails this pair, never the run
        return Prediction.failure(f"{type(e).__name__}: {e}"), timer.ms


def score_pair(pred: Prediction, shape: tuple[int, int], params: dict[str, float]) -> dict[str, Any]:
    """Per-pair errors of one prediction against the ground truth of its deformation, and the
    deformation's parameters."""
    h, w = shape
    gt = np.linalg.inv(deformation_matrix(params, h, w))
    failed = pred.failed or ""
    if failed:
        errors = {k: math.inf for k in metrics.PAIR_METRICS}
    elif pred.flow is None and np.array_equal(pred.matrix[2], [0.0, 0.0, 1.0]):
        errors = metrics.affine_pair_errors(pred.matrix, gt, h, w)  # exact, no flows built
    else:
        errors = metrics.pair_errors(pred.to_flow(h, w), geometry.matrix_to_flow(gt, h, w))
    if not failed and not math.isfinite(errors["rmse"]):
        failed = "the prediction's errors are not finite"
        errors = {k: math.inf for k in metrics.PAIR_METRICS}
    return {**errors, "failed": failed, **{k: params[k] for k in ("rotation_deg", "scale", "tx", "ty")}}


def _spread(ids: list[str], limit: int | None) -> list[str]:
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be a positive number of pairs (or None for all), got {limit}")
    return [ids[i * len(ids) // limit] for i in range(limit)] if limit and limit < len(ids) else ids


def _runtime_summary(table: pd.DataFrame, devices: list[str], sessions: list[dict[str, Any]],
                     predicted_now: dict[str, Any] | None) -> tuple[dict[str, float], dict[str, Any]]:
    """Runtimes, set-up time and peak memory of the pair set, and where they come from.

    Runtimes measured on different devices are not pooled: the summary's runtimes are then NaN
    and ``runtime_devices`` says why (``--retime`` measures them again on one device).
    """
    counts = Counter(devices)
    info: dict[str, Any] = {"runtime_devices": dict(counts)}
    out = metrics.runtime_summary(table["runtime_ms"].to_numpy(dtype=float))
    if len(counts) > 1:
        out = {k: math.nan for k in out}
        info["warning"] = (f"runtimes were measured on {len(counts)} devices ({', '.join(counts)}); they are not "
                           "pooled — rerun with --retime to measure every pair on one device")
    device = counts.most_common(1)[0][0] if counts else ""
    if predicted_now is not None and predicted_now["device_name"] == device:
        session, info["timing_source"] = predicted_now, "measured by this run"
    else:
        same = [s for s in sessions if s.get("device_name") == device]
        session = same[-1] if same else {}
        info["timing_source"] = f"cached: prediction session of {session['created']}" if session else "unknown"
    out |= {"load_s": float(session.get("load_s", math.nan)), "peak_mem_mb": float(session.get("peak_mem_mb", math.nan))}
    return out, info


def _same_result(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None:
        return False
    strip = lambda r: {k: v for k, v in r.items() if k not in VOLATILE}  # noqa: E731
    return strip(store.jsonable(old)) == strip(store.jsonable(new))


def _write(fn: Callable[[], Any], what: Path) -> Any:
    try:
        return fn()
    except PermissionError as e:
        raise StoreError(f"cannot write {what} ({e.strerror}); use a writable results folder (--results PATH)") from None
    except OSError as e:
        raise StoreError(f"cannot write {what} ({e.strerror or e}); check the disk and the results folder") from None


def evaluate(
    method: str,
    dataset: str,
    split: str = "test",
    protocol: str = "main",
    *,
    device: str = "auto",
    limit: int | None = None,
    sets: dict[str, Any] | None = None,
    dataset_sets: dict[str, Any] | None = None,
    results_dir: str | Path = "results",
    log_mlflow: bool = True,
    mlflow_later: bool = False,
    seed: int = 0,
    warmup: int = 1,
    num_workers: int = 0,
    progress: Callable[[int, int], Any] | None = None,
    parent_run_id: str | None = None,
    shard: tuple[int, int] | None = None,
    retime: bool = False,
    train_dataset: str | None = None,
) -> RunResult:
    """Evaluate ``method`` on ``dataset``/``split`` under the fixed deformations of ``protocol``.

    Args:
        sets / dataset_sets: config overrides (``{"key": value}``, dotted keys allowed).
        limit: evaluate ``limit`` pairs spread evenly over the split (every k-th id, so that a
            small run does not come from one scene of a scene-ordered split); ``None``: all.
        log_mlflow: log the record to the MLflow store of ``results_dir`` (checked before any work).
        mlflow_later: with ``log_mlflow``, an unreachable store does not stop the run: the record is
            kept on disk marked ``mlflow_pending`` for ``regbench log``.
        warmup: untimed ``register`` calls on the first pair before timing (not cached).
        progress: called with (pairs predicted so far, pairs to predict) (the CLI's progress bar).
        shard: ``(i, n)`` predicts only pairs ``i, i + n, i + 2n, …`` of the split into the shared
            cache and returns without scoring (``record`` holds ``predicted_now`` only); an
            unsharded call afterwards scores the merged cache exactly as an unsharded run.
        retime: predict every pair again (on this device) instead of reusing cached ones, so that
            all runtimes come from one device and one session.
        train_dataset: the dataset a learned method's weights were trained on (recorded).
    Returns:
        a :class:`RunResult` whose ``summary`` holds ``cmr_1px`` … ``cmr_5px``, ``r_avg`` and runtimes.
    """
    results_dir = Path(results_dir)
    proto = get_protocol(protocol)
    torch_device = dev.select_device(device)
    model, mspec = registry.build_method(method, sets)
    ds = registry.build_dataset(dataset, dataset_sets)
    ids = _spread(ds.ids(split), limit)
    if not ids:
        raise RegbenchError(f"dataset {dataset!r} split {split!r} has no pairs")
    pending = log_mlflow and not shard and not tracking.check_store(results_dir, allow_unreachable=mlflow_later)
    manifest = store.deformation_manifest_path(registry.cards_root(), dataset, split, proto, results_dir)
    deformations = _write(lambda: store.load_or_create_manifest(manifest, proto, dataset, split, ids), manifest)

    weights = model.weights_checksum
    identity = {"target": mspec.target, "config": config.to_dict(model.config), "weights": weights,
                "dataset": {"name": dataset, "config": config.to_dict(ds.config), "fingerprint": ds.fingerprint},
                "protocol": proto.tag, "seed": seed, "format": store.PREDICTION_FORMAT}
    key = config.config_hash(identity)
    cache = store.cache_dir(results_dir, dataset, split, proto.tag, method, key)
    mine = ids[shard[0]::shard[1]] if shard else ids
    sources = {i: ds.source(split, i) for i in mine}
    rows: dict[str, dict[str, Any]] = {}
    devices: dict[str, str] = {}
    notes: list[str] = []
    todo = []
    for pair_id in mine:
        cached, problem = (None, None) if retime else store.read_prediction(
            store.prediction_path(cache, pair_id), deformations[pair_id], sources[pair_id])
        if problem:
            warnings.warn(problem, stacklevel=2)
            notes.append(problem)
        if cached is None:
            todo.append(pair_id)
            continue
        if not shard:
            rows[pair_id] = {"runtime_ms": cached.runtime_ms} | score_pair(cached.prediction, cached.shape,
                                                                           deformations[pair_id])
            devices[pair_id] = cached.device

    session = _predict(model, ds, split, todo, proto, deformations, sources, cache, torch_device, seed, warmup,
                       num_workers, progress, rows, devices, notes) if todo else None
    if shard:
        return RunResult({"predicted_now": len(todo), "shard": list(shard), "n_pairs": len(ids),
                          **(session or {})}, pd.DataFrame(), cache)

    table = pd.DataFrame([{"pair_id": i, **rows[i]} for i in ids])
    summary = metrics.summarize(table)
    timing, timing_info = _runtime_summary(table, [devices[i] for i in ids], store.read_sessions(cache), session)
    summary |= timing | {"n_failed": float(table["failed"].astype(bool).sum())}
    notes += [timing_info.pop("warning")] if "warning" in timing_info else []
    record = {
        "method": method, "base_method": mspec.target, "dataset": dataset, "split": split, "protocol": proto.name,
        "protocol_tag": proto.tag, "protocol_params": proto.params(), "seed": seed, "limit": limit,
        "config": config.to_dict(model.config), "config_hash": key, "dataset_config": config.to_dict(ds.config),
        "dataset_fingerprint": ds.fingerprint, "weights_checksum": weights, "train_dataset": train_dataset,
        "device": str(torch_device), "device_name": dev.device_name(torch_device), "n_pairs": len(ids),
        "predicted_now": len(todo), "status": "ok" if not table["failed"].astype(bool).all() else "failed",
        "deformation_manifest": str(manifest), "deformation_checksum": store.manifest_checksum(deformations),
        "summary": summary, **timing_info, "environment": dev.environment(torch_device), "versions":
        {"regbench": __version__, "format": store.PREDICTION_FORMAT}, "git": git_state(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "warnings": notes,
    }
    run_dir = store.eval_dir(cache, ids)
    old = store.read_record(run_dir)
    if _same_result(old, record) and not todo and (not log_mlflow or old.get("mlflow_run_id") or pending):
        return RunResult(old | {"predicted_now": 0}, table, run_dir)  # an unchanged cached rerun writes nothing
    figures = sorted((cache / "figures").glob("*.png"))
    _write(lambda: (store.atomic_write_text(run_dir / "per_pair.csv", table.to_csv(index=False)),
                    store.atomic_write_json(cache / "config.json", {"method": record["config"],
                                                                    "dataset": record["dataset_config"]}),
                    store.write_record(run_dir, record)), run_dir)
    if pending:
        record["mlflow_pending"] = True
    elif log_mlflow:
        record["mlflow_run_id"] = tracking.log_run(record, [run_dir / "per_pair.csv", run_dir / "record.json",
                                                            cache / "config.json", *figures], results_dir,
                                                   parent_run_id=parent_run_id)
    store.write_record(run_dir, record)
    return RunResult(record, table, run_dir)


def _predict(model: Any, ds: Any, split: str, todo: list[str], proto: Protocol, deformations: dict[str, dict],
             sources: dict[str, str], cache: Path, torch_device: torch.device, seed: int, warmup: int,
             num_workers: int, progress: Callable[[int, int], Any] | None, rows: dict[str, dict],
             devices: dict[str, str], notes: list[str]) -> dict[str, Any]:
    """Set the method up, predict, cache and score every pair of ``todo``; returns the session."""
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    try:
        model.setup(torch_device)
    except RegbenchError:
        raise
    except (Exception, SystemExit) as e:
        raise MethodError(f"method set-up failed on {torch_device}: {type(e).__name__}: {e}") from e
    load_s = time.perf_counter() - t0
    dev.reset_peak_memory(torch_device)
    name = dev.device_name(torch_device)
    for n, pair in enumerate(pair_loader(ds, split, todo, proto.name, num_workers, deformations)):
        if n == 0:
            for _ in range(warmup):
                _register(model, pair, torch_device)
        pred, ms = _register(model, pair, torch_device)
        path = store.prediction_path(cache, pair.pair_id)
        _write(lambda: store.save_prediction(path, pred, pair.shape, ms, deformations[pair.pair_id],
                                             sources[pair.pair_id], name), path)
        rows[pair.pair_id] = {"runtime_ms": ms} | score_pair(pred, pair.shape, deformations[pair.pair_id])
        devices[pair.pair_id] = name
        if n < N_FIGURES:
            try:
                viz.overlay_figure(pair.sar, pair.opt, None if pred.failed else pred.to_flow(*pair.shape),
                                   pair.gt_flow(), cache / "figures" / f"{store.file_key(pair.pair_id)}.png")
            except Exception as e:  # a figure never costs a result
                notes.append(f"figure of pair {pair.pair_id} failed: {type(e).__name__}: {e}")
        if progress:
            progress(n + 1, len(todo))
    session = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device_name": name,
               "load_s": load_s, "peak_mem_mb": dev.peak_memory_mb(torch_device), "n_predicted": len(todo)}
    _write(lambda: store.write_session(cache, session), cache)
    return session
