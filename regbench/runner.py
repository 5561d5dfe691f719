"""``evaluate``: predict (cached), then score — the library call behind ``regbench run``.

1. Resolve the method and dataset by name, their configs and the split's pair ids.
2. Read (or create once) the fixed deformation manifest of (dataset, split, protocol).
3. Predict every pair not yet in the cache: load, deform the SAR image, time ``register`` only,
   write the prediction atomically. The cache key hashes the resolved method config, the
   weights' checksum, the dataset fingerprint, the pair ids, the deformations and the format
   version, so an interrupted run resumes and a changed setting never reuses stale predictions.
4. Score every pair from the cache (``regbench.metrics``), write the per-pair table and a JSON
   record beside the cache, and log both to MLflow.
"""
from __future__ import annotations

import datetime as dt
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from . import __version__, config, device as dev, geometry, metrics, registry, store, tracking, viz
from .protocol import deformation_matrix, get_protocol
from .datasets.loader import pair_loader
from .types import Pair, Prediction

N_FIGURES = 2  # pairs per run that get a before/after overlay PNG


@dataclass
class RunResult:
    """What ``evaluate`` returns: the JSON record, the per-pair table and where they live."""

    record: dict[str, Any]
    table: pd.DataFrame
    run_dir: Path

    @property
    def summary(self) -> dict[str, float]:
        return self.record["summary"]


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _register(method: Any, pair: Pair, device: torch.device) -> tuple[Prediction, float]:
    """Run and time one ``register`` call; exceptions and bad outputs become failed predictions."""
    timer = dev.Timer(device)
    try:
        with timer:
            pred = method.register(pair.for_method())
        if not isinstance(pred, Prediction):
            pred = Prediction.failure(f"register returned {type(pred).__name__}, not a Prediction")
        return pred.validate(pair.shape), timer.ms
    except Exception as e:  # a crashing method fails this pair, never the run
        return Prediction.failure(f"{type(e).__name__}: {e}"), timer.ms


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
    seed: int = 0,
    warmup: int = 1,
    num_workers: int = 0,
    progress: Callable[[int, int], Any] | None = None,
    parent_run_id: str | None = None,
    shard: tuple[int, int] | None = None,
) -> RunResult:
    """Evaluate ``method`` on ``dataset``/``split`` under the fixed deformations of ``protocol``.

    Args:
        sets / dataset_sets: config overrides (``{"key": value}``, dotted keys allowed).
        limit: evaluate ``limit`` pairs spread evenly over the split (every k-th id, so that a
            small run does not come from one scene of a scene-ordered split).
        warmup: untimed ``register`` calls on the first pair before timing (not cached).
        progress: called with (pairs predicted so far, pairs to predict) (the CLI's progress bar).
        shard: ``(i, n)`` predicts only pairs ``i, i + n, i + 2n, …`` of the split into the shared
            cache and returns without scoring (``record`` holds ``predicted_now`` only); an
            unsharded call afterwards scores the merged cache exactly as an unsharded run.
    Returns:
        a :class:`RunResult` whose ``summary`` holds ``cmr_1px`` … ``cmr_5px``, ``r_avg`` and runtimes.
    """
    results_dir = Path(results_dir)
    torch_device = dev.select_device(device)
    model, mspec = registry.build_method(method, sets)
    ds = registry.build_dataset(dataset, dataset_sets)
    ids = ds.ids(split)
    if not ids:
        raise ValueError(f"dataset {dataset!r} split {split!r} has no pairs")
    ids = [ids[i * len(ids) // limit] for i in range(limit)] if limit and limit < len(ids) else ids
    proto = get_protocol(protocol)
    manifest = store.deformation_manifest_path(registry.cards_root(), dataset, split, proto, results_dir)
    deformations = store.load_or_create_manifest(manifest, proto, dataset, split, ids)

    weights = model.weights_checksum
    key = config.config_hash(
        {"target": mspec.target, "config": config.to_dict(model.config), "weights": weights, "data": ds.fingerprint,
         "protocol": proto.tag, "seed": seed, "format": store.PREDICTION_FORMAT}
    )
    run_dir = store.run_dir(results_dir, dataset, split, proto.tag, method, key)
    (run_dir / "pred").mkdir(parents=True, exist_ok=True)
    mine = ids[shard[0]::shard[1]] if shard else ids
    todo = [i for i in mine if not store.is_cached(store.prediction_path(run_dir, i), deformations[i])]

    timing = {"load_s": float("nan"), "peak_mem_mb": float("nan")}
    if todo:
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        model.setup(torch_device)
        timing["load_s"] = time.perf_counter() - t0
        dev.reset_peak_memory(torch_device)
        for n, pair in enumerate(pair_loader(ds, split, todo, proto.name, num_workers, deformations)):
            if n == 0:
                for _ in range(warmup):
                    _register(model, pair, torch_device)
            pred, ms = _register(model, pair, torch_device)
            store.save_prediction(store.prediction_path(run_dir, pair.pair_id), pred, pair.shape, ms,
                                  deformations[pair.pair_id])
            if n < N_FIGURES:
                fig = run_dir / "figures" / f"{store.file_key(pair.pair_id)}.png"
                viz.overlay_figure(pair.sar, pair.opt, None if pred.failed else pred.to_flow(*pair.shape), pair.gt_flow(), fig)
            if progress:
                progress(n + 1, len(todo))
        timing["peak_mem_mb"] = dev.peak_memory_mb(torch_device)
    if shard:
        return RunResult({"predicted_now": len(todo), "shard": list(shard), "n_pairs": len(ids), **timing},
                         pd.DataFrame(), run_dir)
    figures = sorted((run_dir / "figures").glob("*.png"))

    table = score(run_dir, ids, deformations)
    summary = metrics.summarize(table) | timing | {"n_failed": float(table["failed"].astype(bool).sum())}
    record = {
        "method": method, "base_method": mspec.target, "dataset": dataset, "split": split, "protocol": proto.name,
        "protocol_tag": proto.tag, "seed": seed, "config": config.to_dict(model.config), "config_hash": key,
        "dataset_config": config.to_dict(ds.config), "weights_checksum": weights, "device": str(torch_device),
        "device_name": dev.device_name(torch_device), "n_pairs": len(ids), "predicted_now": len(todo),
        "status": "ok" if not table["failed"].astype(bool).all() else "failed",
        "versions": {"regbench": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version(), "format": store.PREDICTION_FORMAT},
        "git_commit": git_commit(), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "deformation_manifest": str(manifest), "summary": summary,
    }
    table.to_csv(run_dir / "per_pair.csv", index=False)
    store.atomic_write_json(run_dir / "config.json", record["config"])
    store.write_record(run_dir, record)
    if log_mlflow:
        record["mlflow_run_id"] = tracking.log_run(
            record, [run_dir / "per_pair.csv", run_dir / "config.json", *figures], results_dir, parent_run_id=parent_run_id
        )
        store.write_record(run_dir, record)
    return RunResult(record, table, run_dir)


def score(run_dir: Path, ids: list[str], deformations: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per-pair errors of a run's cached predictions against the ground truth of their deformations."""
    rows = []
    for pair_id in ids:
        pred, (h, w), ms = store.load_prediction(store.prediction_path(run_dir, pair_id))
        gt_flow = geometry.matrix_to_flow(np.linalg.inv(deformation_matrix(deformations[pair_id], h, w)), h, w)
        errors = metrics.pair_errors(None if pred.failed else pred.to_flow(h, w), gt_flow)
        rows.append({"pair_id": pair_id, **errors, "runtime_ms": ms, "failed": pred.failed or ""})
    return pd.DataFrame(rows)
