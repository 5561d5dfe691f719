"""Files: atomic writes, deformation manifests, run folders, cached predictions and records.

Every file regbench writes goes through :func:`atomic_write` (a temporary file in the same folder,
then a rename), so a reader never sees a partial file and a crash leaves the previous version or
nothing — never a half-written one, and no temporary file behind.

A results folder holds::

    <results>/runs/<dataset>/<split>/<protocol tag>/<method>/<key12>/
        pred/<pair>.npz      one cached prediction per pair (:func:`save_prediction`)
        per_pair.csv         the per-pair table of the last scoring
        record.json          the run record (:func:`write_record`)
        config.json          the resolved method config
        figures/*.png        overlay figures
    <results>/deformations/<dataset>/<split>-<protocol tag>.json   manifests of uncommitted datasets
    <results>/cells/<id16>/  grid cell results (``regbench.grid``)
    <results>/train/<run>/   training runs (``regbench.train``)
    <results>/mlflow.db      the default MLflow store (``regbench.tracking``)
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np

from .protocol import Protocol, draw_deformation
from .types import Prediction

#: version of the prediction file format; part of every cache key
PREDICTION_FORMAT = 1


# ------------------------------------------------------------------------------------ atomic writes
def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Create ``path`` by ``write(file)`` on a temporary file in the same folder, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, default=str))


# ------------------------------------------------------------------------------ deformation manifests
def cards_deformation_path(cards_root: Path, dataset: str, split: str, proto: Protocol) -> Path:
    """Where a dataset's committed deformation manifest lives: ``datasets/<dataset>/deformations/``."""
    return cards_root / "datasets" / dataset / "deformations" / f"{split}-{proto.tag}.json"


def deformation_manifest_path(cards_root: Path, dataset: str, split: str, proto: Protocol, results_dir: Path) -> Path:
    """The committed manifest if there is one, else one in the results folder."""
    committed = cards_deformation_path(cards_root, dataset, split, proto)
    return committed if committed.exists() else results_dir / "deformations" / dataset / f"{split}-{proto.tag}.json"


def manifest_checksum(deformations: dict[str, dict[str, float]]) -> str:
    return hashlib.sha256(json.dumps(deformations, sort_keys=True).encode()).hexdigest()


def _protocol_json(protocol: Protocol) -> dict[str, Any]:
    return asdict(protocol) | {"scale_range": list(protocol.scale_range)}


def load_or_create_manifest(path: Path, protocol: Protocol, dataset: str, split: str,
                            pair_ids: list[str]) -> dict[str, dict[str, float]]:
    """The deformations of ``pair_ids``, read from the manifest at ``path``; ids it lacks are drawn
    (:func:`regbench.protocol.draw_deformation`) and added once.

    A manifest written by another protocol definition, or edited by hand, is refused.
    """
    deformations: dict[str, dict[str, float]] = {}
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("protocol") != _protocol_json(protocol):
            raise ValueError(f"deformation manifest {path} was written for another protocol definition; delete it to redraw")
        deformations = data["deformations"]
        if manifest_checksum(deformations) != data.get("checksum"):
            raise ValueError(f"deformation manifest {path} fails its checksum (edited by hand?); delete it to redraw")
    missing = [i for i in pair_ids if i not in deformations]
    if missing:
        for i in missing:
            deformations[i] = draw_deformation(protocol, dataset, split, i)
        deformations = dict(sorted(deformations.items()))
        data = {"protocol": _protocol_json(protocol), "dataset": dataset, "split": split,
                "checksum": manifest_checksum(deformations), "deformations": deformations}
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
    return {i: deformations[i] for i in pair_ids}


# ------------------------------------------------------------------------------------- run folders
def run_dir(results_dir: Path, dataset: str, split: str, protocol_tag: str, method: str, key: str) -> Path:
    return Path(results_dir) / "runs" / dataset / split / protocol_tag / method / key[:12]


def file_key(pair_id: str) -> str:
    """A pair id as a file name (ids may contain ``/``)."""
    return pair_id.replace("/", "__")


def prediction_path(run: Path, pair_id: str) -> Path:
    return run / "pred" / f"{file_key(pair_id)}.npz"


# ------------------------------------------------------------------------------ cached predictions
def _deformation_vector(params: dict[str, float]) -> np.ndarray:
    return np.array([params[k] for k in ("rotation_deg", "scale", "tx", "ty")])


def is_cached(path: Path, params: dict[str, float]) -> bool:
    """A prediction exists for this pair and was made on the same deformation."""
    if not path.exists():
        return False
    with np.load(path) as z:
        return "deformation" in z and np.array_equal(z["deformation"], _deformation_vector(params))


def save_prediction(path: Path, pred: Prediction, shape: tuple[int, int], runtime_ms: float,
                    params: dict[str, float]) -> None:
    """Write one pair's prediction, its image shape, its runtime and the deformation it was made on."""
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
        if pred.matches is not None:
            arrays["matches"] = np.asarray(pred.matches, np.float32)
            if pred.inliers is not None:
                arrays["inliers"] = np.asarray(pred.inliers, bool)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_prediction(path: Path) -> tuple[Prediction, tuple[int, int], float]:
    """(prediction, image shape, runtime in ms) of a cached pair."""
    with np.load(path) as z:
        pred = Prediction(
            flow=z["flow"] if "flow" in z else None,
            matrix=z["matrix"] if "matrix" in z else None,
            matches=z["matches"] if "matches" in z else None,
            inliers=z["inliers"] if "inliers" in z else None,
            failed=str(z["failed"]) or None,
            info=json.loads(str(z["info"])),
        )
        return pred, tuple(int(v) for v in z["shape"]), float(z["runtime_ms"])  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------- records
def write_record(run: Path, record: dict[str, Any]) -> None:
    atomic_write_json(run / "record.json", record)


def iter_records(results_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Every stored run record under ``<results>/runs`` (in path order)."""
    for path in sorted((Path(results_dir) / "runs").glob("*/*/*/*/*/record.json")):
        record = json.loads(path.read_text())
        record["run_dir"] = str(path.parent)
        yield record
