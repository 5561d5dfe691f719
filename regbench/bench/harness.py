"""``regbench bench harness``: what the harness itself costs per pair, the method excluded.

Two kinds of prediction go through the same stages as in ``evaluate``: a matrix (control-point
and global methods) and a dense flow (networks). The dense flow is a realistic one: an affine
field plus a smooth residual (a 32×32 random field of σ 1.5 px, bicubically upsampled), as a
network predicting at a coarse level and upsampling gives; a flow with per-pixel noise stores
larger (the figure is printed too).
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .. import geometry, protocol, registry, runner, store, tracking
from ..types import Prediction


def _dense_flow(gt: np.ndarray, h: int, w: int, rng: np.random.Generator, noise_px: float = 0.0) -> np.ndarray:
    near = gt.copy()
    near[:2, 2] += rng.normal(0, 1.0, 2)
    residual = cv2.resize(rng.normal(0, 1.5, (32, 32, 2)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    flow = geometry.matrix_to_flow(near, h, w) + residual
    return flow + rng.normal(0, noise_px, flow.shape).astype(np.float32) if noise_px else flow


def bench_harness(dataset: str = "synthetic-512", n_pairs: int = 50, echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Time each harness stage per pair of the first ``n_pairs`` test pairs of ``dataset``, for a
    matrix and a dense prediction; print ms and stored bytes per pair.

    Stages: load the pair (from the dataset's on-disk cache), deform the SAR image, write the
    prediction to the cache, read it back and score it (:func:`regbench.runner.score_pair`), and
    one MLflow run amortised over a 200-pair split. The dataset is generated first, untimed.
    Also checks that the stored dense flow scores within 1e-3 px of the float32 flow.
    """
    ds = registry.build_dataset(dataset)
    ids = ds.ids("test")[:n_pairs]
    proto = protocol.get_protocol("main")
    deformations = {i: protocol.draw_deformation(proto, dataset, "test", i) for i in ids}
    for i in ids:
        ds.load("test", i)  # generate / warm the on-disk cache, untimed
    rng = np.random.default_rng(0)
    kinds = ("matrix", "dense")
    stages = {k: {"load": 0.0, "deform": 0.0, "cache write": 0.0, "read + score": 0.0} for k in kinds}
    size = {k: 0 for k in kinds}
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for kind in kinds:
            cache = root / kind
            for i in ids:
                t0 = time.perf_counter()
                sar, _ = ds.load("test", i)
                t1 = time.perf_counter()
                _, gt = protocol.deform(sar, deformations[i])
                t2 = time.perf_counter()
                h, w = sar.shape
                if kind == "matrix":
                    near = gt.copy()
                    near[:2, 2] += rng.normal(0, 1.0, 2)
                    pred = Prediction(matrix=near)
                else:
                    pred = Prediction(flow=_dense_flow(gt, h, w, rng))
                t3 = time.perf_counter()
                path = store.prediction_path(cache, i)
                store.save_prediction(path, pred, (h, w), 1.0, deformations[i], device="bench")
                t4 = time.perf_counter()
                cached, _ = store.read_prediction(path, deformations[i])
                row = runner.score_pair(cached.prediction, cached.shape, deformations[i])
                t5 = time.perf_counter()
                for stage, dt in zip(stages[kind], (t1 - t0, t2 - t1, t4 - t3, t5 - t4)):
                    stages[kind][stage] += dt
                size[kind] += path.stat().st_size
                if kind == "dense":
                    exact = runner.score_pair(pred, (h, w), deformations[i])
                    worst = max(worst, abs(row["rmse"] - exact["rmse"]))
        noisy = Prediction(flow=_dense_flow(gt, h, w, rng, noise_px=0.3))
        store.save_prediction(root / "noisy.npz", noisy, (h, w), 1.0, deformations[ids[-1]])
        record = {"method": "bench", "dataset": dataset, "split": "test", "protocol": "main", "protocol_tag": proto.tag,
                  "seed": 0, "config_hash": "0" * 12, "device": "cpu", "device_name": "cpu", "config": {},
                  "versions": {}, "status": "ok", "summary": {"cmr_1px": 0.0}}
        csv = root / "per_pair.csv"
        csv.write_text("pair_id,rmse\n" + "".join(f"{i},1.0\n" for i in range(200)))
        tracking.log_run(record, [csv], root)  # the first run creates the store: not counted
        t0 = time.perf_counter()
        tracking.log_run(record, [csv], root)
        mlflow_ms = (time.perf_counter() - t0) / 200 * 1000
        noisy_bytes = (root / "noisy.npz").stat().st_size
    out: dict[str, Any] = {"dataset": dataset, "pairs": len(ids), "size": [h, w]}
    echo(f"harness cost per pair of {dataset} ({w}x{h}), {len(ids)} pairs, ms:")
    echo(f"  {'stage':<32}{'matrix':>10}{'dense':>10}")
    for stage in stages["matrix"]:
        echo(f"  {stage:<32}" + "".join(f"{stages[k][stage] / len(ids) * 1000:10.2f}" for k in kinds))
    echo(f"  {'mlflow (one run / 200 pairs)':<32}{mlflow_ms:10.2f}{mlflow_ms:10.2f}")
    for kind in kinds:
        per = {k: v / len(ids) * 1000 for k, v in stages[kind].items()}
        out[kind] = per | {"mlflow": mlflow_ms, "total": sum(per.values()) + mlflow_ms, "bytes": size[kind] / len(ids)}
    echo(f"  {'total':<32}" + "".join(f"{out[k]['total']:10.2f}" for k in kinds))
    echo(f"  {'stored bytes per pair':<32}" + "".join(f"{out[k]['bytes']:10.0f}" for k in kinds))
    echo(f"dense flow as float32 would be {h * w * 8} bytes; with 0.3 px per-pixel noise it stores {noisy_bytes} bytes; "
         f"largest per-pair RMSE change from storage {worst:.2e} px (bound {store.FLOW_STEP / math.sqrt(12):.1e})")
    out["dense_noisy_bytes"] = noisy_bytes
    out["rmse_storage_error_px"] = worst
    return out
