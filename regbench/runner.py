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
import json
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from . import __version__, config, device as dev, geometry, metrics, protocol, registry, tracking, viz
from .datasets.loader import pair_loader
from .types import Pair, Prediction

FORMAT_VERSION = 1
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


def _file_key(pair_id: str) -> str:
    return pair_id.replace("/", "__")


def deformation_manifest_path(dataset: str, split: str, proto: protocol.Protocol, results_dir: Path) -> Path:
    """The committed manifest under ``datasets/<dataset>/deformations/`` if any, else one in results."""
    committed = registry.cards_root() / "datasets" / dataset / "deformations" / f"{split}-{proto.tag}.json"
    return committed if committed.exists() else results_dir / "deformations" / dataset / f"{split}-{proto.tag}.json"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _deformation_vector(params: dict[str, float]) -> np.ndarray:
    return np.array([params[k] for k in ("rotation_deg", "scale", "tx", "ty")])


def _is_cached(path: Path, params: dict[str, float]) -> bool:
    """A prediction exists for this pair and was made on the same deformation."""
    if not path.exists():
        return False
    with np.load(path) as z:
        return "deformation" in z and np.array_equal(z["deformation"], _deformation_vector(params))


def _save_prediction(path: Path, pred: Prediction, shape: tuple[int, int], runtime_ms: float,
                     params: dict[str, float]) -> None:
    arrays: dict[str, Any] = {"shape": np.array(shape), "runtime_ms": np.array(runtime_ms),
                              "deformation": _deformation_vector(params)}
    arrays["failed"] = np.array(pred.failed or "")
    arrays["info"] = np.array(json.dumps(pred.info, default=float))
    if not pred.failed:
        if pred.flow is not None:
            arrays["flow"] = pred.flow.astype(np.float32)
        if pred.matrix is not None:
            arrays["matrix"] = np.asarray(pred.matrix, np.float64)
        if pred.confidence is not None:
            arrays["confidence"] = pred.confidence.astype(np.float16)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load_prediction(path: Path) -> tuple[Prediction, tuple[int, int], float]:
    with np.load(path) as z:
        pred = Prediction(
            flow=z["flow"] if "flow" in z else None,
            matrix=z["matrix"] if "matrix" in z else None,
            failed=str(z["failed"]) or None,
            info=json.loads(str(z["info"])),
        )
        return pred, tuple(int(v) for v in z["shape"]), float(z["runtime_ms"])  # type: ignore[return-value]


def _register(method: Any, pair: Pair, device: torch.device) -> tuple[Prediction, float]:
    """Run and time one ``register`` call; exceptions and bad outputs become failed predictions."""
    timer = dev.Timer(device)
    try:
        with timer:
            pred = method.register(pair.without_gt())
        if not isinstance(pred, Prediction):
            pred = Prediction.failure(f"register returned {type(pred).__name__}, not a Prediction")
        return pred.validate(pair.shape), timer.ms
    except Exception as e:  # a crashing method fails this pair, never the run
        return Prediction.failure(f"{type(e).__name__}: {e}"), timer.ms


def evaluate(
    method: str,
    dataset: str,
    split: str = "test",
    protocol_name: str = "main",
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
    progress: Callable[[int], Any] | None = None,
    parent_run_id: str | None = None,
    shard: tuple[int, int] | None = None,
) -> RunResult:
    """Evaluate ``method`` on ``dataset``/``split`` under a fixed ``protocol_name``.

    Args:
        sets / dataset_sets: config overrides (``{"key": value}``, dotted keys allowed).
        limit: evaluate ``limit`` pairs spread evenly over the split (every k-th id, so that a
            small run does not come from one scene of a scene-ordered split).
        warmup: untimed ``register`` calls on the first pair before timing (not cached).
        progress: called with the number of pairs predicted so far (the CLI's progress bar).
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
    proto = protocol.get_protocol(protocol_name)
    manifest = deformation_manifest_path(dataset, split, proto, results_dir)
    deformations = protocol.load_or_create_manifest(manifest, proto, dataset, split, ids)

    weights = model.weights_checksum
    key = config.config_hash(
        {"target": mspec.target, "config": config.to_dict(model.config), "weights": weights, "data": ds.fingerprint,
         "protocol": proto.tag, "seed": seed, "format": FORMAT_VERSION}
    )
    run_dir = results_dir / "runs" / dataset / split / proto.tag / method / key[:12]
    pred_dir = run_dir / "pred"
    pred_dir.mkdir(parents=True, exist_ok=True)
    mine = ids[shard[0]::shard[1]] if shard else ids
    todo = [i for i in mine if not _is_cached(pred_dir / f"{_file_key(i)}.npz", deformations[i])]

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
            _save_prediction(pred_dir / f"{_file_key(pair.pair_id)}.npz", pred, pair.shape, ms, deformations[pair.pair_id])
            if n < N_FIGURES:
                fig = run_dir / "figures" / f"{_file_key(pair.pair_id)}.png"
                viz.overlay_figure(pair.sar, pair.opt, None if pred.failed else pred.to_flow(*pair.shape), pair.gt_flow(), fig)
            if progress:
                progress(n + 1)
        timing["peak_mem_mb"] = dev.peak_memory_mb(torch_device)
    if shard:
        return RunResult({"predicted_now": len(todo), "shard": list(shard), "n_pairs": len(ids), **timing},
                         pd.DataFrame(), run_dir)
    figures = sorted((run_dir / "figures").glob("*.png"))

    table = score(pred_dir, ids, deformations)
    summary = metrics.summarize(table) | timing | {"n_failed": float(table["failed"].astype(bool).sum())}
    record = {
        "method": method, "base_method": mspec.target, "dataset": dataset, "split": split, "protocol": proto.name,
        "protocol_tag": proto.tag, "seed": seed, "config": config.to_dict(model.config), "config_hash": key,
        "dataset_config": config.to_dict(ds.config), "weights_checksum": weights, "device": str(torch_device),
        "device_name": dev.device_name(torch_device), "n_pairs": len(ids), "predicted_now": len(todo),
        "status": "ok" if not table["failed"].astype(bool).all() else "failed",
        "versions": {"regbench": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version(), "format": FORMAT_VERSION},
        "git_commit": git_commit(), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "deformation_manifest": str(manifest), "summary": summary,
    }
    table.to_csv(run_dir / "per_pair.csv", index=False)
    protocol.atomic_write_text(run_dir / "config.json", json.dumps(record["config"], indent=1))
    protocol.atomic_write_text(run_dir / "record.json", json.dumps(record, indent=1, default=str))
    if log_mlflow:
        record["mlflow_run_id"] = tracking.log_run(
            record, [run_dir / "per_pair.csv", run_dir / "config.json", *figures], results_dir, parent_run_id=parent_run_id
        )
        protocol.atomic_write_text(run_dir / "record.json", json.dumps(record, indent=1, default=str))
    return RunResult(record, table, run_dir)


def score(pred_dir: Path, ids: list[str], deformations: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per-pair errors of cached predictions against the ground truth of their deformations."""
    rows = []
    for pair_id in ids:
        pred, (h, w), ms = _load_prediction(pred_dir / f"{_file_key(pair_id)}.npz")
        gt_flow = geometry.matrix_to_flow(np.linalg.inv(protocol.deformation_matrix(deformations[pair_id], h, w)), h, w)
        errors = metrics.pair_errors(None if pred.failed else pred.to_flow(h, w), gt_flow)
        rows.append({"pair_id": pair_id, **errors, "runtime_ms": ms, "failed": pred.failed or ""})
    return pd.DataFrame(rows)
