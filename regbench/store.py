"""Files: atomic writes, deformation manifests, run folders, cached predictions and records.

Every file regbench writes goes through :func:`atomic_write` (a temporary file in the same folder,
then a rename), so a reader never sees a partial file and a crash leaves the previous version or
nothing — never a half-written one, and no temporary file behind.

A results folder holds::

    <results>/runs/<dataset>/<split>/<protocol tag>/<method>/<key12>/   a prediction cache
        pred/<pair>.npz      one cached prediction per pair (:func:`save_prediction`)
        sessions/*.json      each prediction session: device, set-up time, peak memory
        config.json          the resolved method and dataset configs
        figures/*.png        overlay figures of predicted pairs
        pairs-<n>-<hash>/    one evaluated pair set: per_pair.csv and record.json
    <results>/deformations/<dataset>/<split>-<protocol tag>.json   manifests of uncommitted datasets
    <results>/cells/<id16>/  grid cell results (``regbench.grid``)
    <results>/train/<run>/   training runs (``regbench.train``)
    <results>/mlflow.db      the default MLflow store (``regbench.tracking``)
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np

from .protocol import Protocol, draw_deformation
from .types import Prediction

#: version of the prediction file format; part of every cache key
PREDICTION_FORMAT = 2


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


def jsonable(obj: Any) -> Any:
    """``obj`` as strict JSON data: non-finite floats as ``None``, tuples as lists, numpy scalars
    as numbers, other objects as strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return str(obj)


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
def cache_dir(results_dir: Path, dataset: str, split: str, protocol_tag: str, method: str, key: str) -> Path:
    """The prediction cache of one (method config, dataset, split, protocol, seed): shared by every
    pair set evaluated from it."""
    return Path(results_dir) / "runs" / dataset / split / protocol_tag / method / key[:12]


def eval_dir(cache: Path, pair_ids: list[str]) -> Path:
    """The folder of one evaluated pair set (all pairs of the split, or a ``--limit`` subset)."""
    digest = hashlib.sha256("".join(f"{i}\n" for i in pair_ids).encode()).hexdigest()[:10]
    return cache / f"pairs-{len(pair_ids)}-{digest}"


def file_key(pair_id: str) -> str:
    """A pair id as a file name (ids may contain ``/``)."""
    return pair_id.replace("/", "__")


def prediction_path(cache: Path, pair_id: str) -> Path:
    return cache / "pred" / f"{file_key(pair_id)}.npz"


# ------------------------------------------------------------------------------ cached predictions
#: dense flows are stored quantised to this step (px): error ≤ FLOW_STEP / 2 per component, so a
#: per-pair RMSE moves by at most FLOW_STEP / √12 ≈ 0.00056 px
FLOW_STEP = 1 / 512


def _codec() -> Any:
    from numcodecs import Blosc

    return Blosc(cname="zstd", clevel=1, shuffle=Blosc.BITSHUFFLE)


def encode_flow(flow: np.ndarray) -> np.ndarray:
    """(H, W, 2) float flow → compressed bytes: quantised to :data:`FLOW_STEP`, second differences
    (x then y: zero for an affine field) as int32, Blosc-zstd with bit shuffling."""
    q = np.rint(np.moveaxis(flow, -1, 0) / FLOW_STEP).astype(np.int32)
    d = np.diff(np.diff(q, axis=2, prepend=np.int32(0)), axis=1, prepend=np.int32(0)).astype(np.int32)
    return np.frombuffer(_codec().encode(np.ascontiguousarray(d)), np.uint8)


def decode_flow(code: np.ndarray, height: int, width: int) -> np.ndarray:
    """The inverse of :func:`encode_flow`: (H, W, 2) float32."""
    d = np.frombuffer(_codec().decode(code.tobytes()), np.int32).reshape(2, height, width).copy()
    for y in range(1, height):  # cumulative sums down the rows (numpy's cumsum along axis 1 is slow)
        np.add(d[:, y], d[:, y - 1], out=d[:, y])
    np.cumsum(d, axis=2, out=d)
    return np.moveaxis(d, 0, -1).astype(np.float32) * np.float32(FLOW_STEP)


def _deformation_vector(params: dict[str, float]) -> np.ndarray:
    return np.array([params[k] for k in ("rotation_deg", "scale", "tx", "ty")])


@dataclass
class Cached:
    """A cached pair: the prediction, the image shape, its runtime and the device that measured it."""

    prediction: Prediction
    shape: tuple[int, int]
    runtime_ms: float
    device: str


def save_prediction(path: Path, pred: Prediction, shape: tuple[int, int], runtime_ms: float,
                    params: dict[str, float], source: str = "", device: str = "") -> None:
    """Write one pair's prediction with what it was made from: the deformation, the input files'
    identity (``source``), the image shape, the runtime and the device that measured it."""
    meta = {"format": PREDICTION_FORMAT, "shape": list(shape), "runtime_ms": runtime_ms,
            "deformation": _deformation_vector(params).tolist(), "source": source, "device": device,
            "failed": pred.failed or "", "info": pred.info}
    arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta, default=float))}
    if not pred.failed:
        if pred.flow is not None:
            arrays["flow_code"] = encode_flow(pred.flow)
        if pred.matrix is not None:
            arrays["matrix"] = np.asarray(pred.matrix, np.float64)
        if pred.confidence is not None:
            arrays["confidence"] = pred.confidence.astype(np.float16)
        if pred.matches is not None:
            arrays["matches"] = np.asarray(pred.matches, np.float32)
            if pred.inliers is not None:
                arrays["inliers"] = np.asarray(pred.inliers, bool)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_prediction(path: Path, params: dict[str, float], source: str = "") -> tuple[Cached | None, str | None]:
    """The cached pair at ``path`` if it was made on the same deformation and input files.

    Returns ``(cached, None)``, or ``(None, why)`` when there is nothing usable: ``why`` is ``None``
    for an absent or stale file, and names the problem for an unreadable one (the caller warns and
    recomputes the pair).
    """
    if not path.exists():
        return None, None
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != PREDICTION_FORMAT:
                return None, None
            if meta["deformation"] != _deformation_vector(params).tolist() or meta["source"] != source:
                return None, None
            h, w = meta["shape"]
            pred = Prediction(
                flow=decode_flow(z["flow_code"], h, w) if "flow_code" in z else None,
                matrix=z["matrix"] if "matrix" in z else None,
                confidence=z["confidence"].astype(np.float32) if "confidence" in z else None,
                matches=z["matches"].astype(np.float64) if "matches" in z else None,
                inliers=z["inliers"] if "inliers" in z else None,
                failed=meta["failed"] or None,
                info=meta["info"],
            )
            return Cached(pred, (h, w), float(meta["runtime_ms"]), meta["device"]), None
    except Exception as e:  # zero-byte, truncated or malformed file: any of numpy's, zipfile's or zlib's errors
        return None, f"cached prediction {path} is unreadable ({type(e).__name__}: {e}); recomputing it"


# ----------------------------------------------------------------------------------------- records
def write_record(run: Path, record: dict[str, Any]) -> None:
    atomic_write_json(run / "record.json", record)


def read_record(run: Path) -> dict[str, Any] | None:
    path = run / "record.json"
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


def iter_records(results_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Every stored run record under ``<results>/runs`` (in path order)."""
    for path in sorted((Path(results_dir) / "runs").glob("*/*/*/*/*/pairs-*/record.json")):
        record = json.loads(path.read_text())
        record["run_dir"] = str(path.parent)
        yield record


# ------------------------------------------------------------------------------ prediction sessions
def write_session(cache: Path, session: dict[str, Any]) -> None:
    """Record one prediction session (device, set-up time, peak memory, pairs predicted) of a cache."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    atomic_write_json(cache / "sessions" / f"{stamp}-{os.getpid()}.json", session)


def read_sessions(cache: Path) -> list[dict[str, Any]]:
    """The prediction sessions of a cache, oldest first."""
    out = []
    for path in sorted((cache / "sessions").glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out
