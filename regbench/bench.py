"""``regbench bench harness``: what the harness itself costs per pair, the method excluded."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from . import protocol, runner, tracking
from .datasets.base import read_image
from .types import Prediction


def bench_harness(size: int = 512, n_pairs: int = 50, echo: Callable[[str], Any] = print) -> dict[str, float]:
    """Time each harness stage on ``n_pairs`` random ``size``² PNG pairs; prints ms per pair.

    Stages: read both PNGs, deform the SAR image, write + read the cached prediction (a dense
    flow, the largest kind), score it, and MLflow logging amortised over a 200-pair split.
    """
    rng = np.random.default_rng(0)
    proto = protocol.get_protocol("main")
    stages = {"load": 0.0, "deform": 0.0, "cache": 0.0, "score": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(n_pairs):
            cv2.imwrite(str(root / f"sar{i}.png"), (rng.random((size, size)) * 255).astype(np.uint8))
            cv2.imwrite(str(root / f"opt{i}.png"), (rng.random((size, size, 3)) * 255).astype(np.uint8))
        deformations = {str(i): protocol.draw_deformation(proto, "bench", "test", str(i)) for i in range(n_pairs)}
        flow = rng.normal(size=(size, size, 2)).astype(np.float32)
        for i in range(n_pairs):
            t0 = time.perf_counter()
            sar = read_image(root / f"sar{i}.png", gray=True)
            read_image(root / f"opt{i}.png", gray=False)
            t1 = time.perf_counter()
            protocol.deform(sar, deformations[str(i)])
            t2 = time.perf_counter()
            runner._save_prediction(root / f"{i}.npz", Prediction(flow=flow), (size, size), 1.0, deformations[str(i)])
            t3 = time.perf_counter()
            runner.score(root, [str(i)], deformations)
            t4 = time.perf_counter()
            stages["load"] += t1 - t0
            stages["deform"] += t2 - t1
            stages["cache"] += t3 - t2
            stages["score"] += t4 - t3
        per_pair = {k: v / n_pairs * 1000 for k, v in stages.items()}
        record = {"method": "bench", "dataset": "bench", "split": "test", "protocol": "main", "protocol_tag": "main-v1",
                  "seed": 0, "config_hash": "0", "device": "cpu", "device_name": "cpu", "config": {}, "versions": {},
                  "status": "ok", "summary": {"cmr_1px": 0.0}}
        csv = root / "per_pair.csv"
        csv.write_text("pair_id,rmse\n" + "".join(f"{i},1.0\n" for i in range(200)))
        tracking.log_run(record, [csv], root)  # first call creates the store: not counted
        t0 = time.perf_counter()
        tracking.log_run(record, [csv], root)
        per_pair["mlflow (run / 200 pairs)"] = (time.perf_counter() - t0) / 200 * 1000
    per_pair["total"] = sum(per_pair.values())
    echo(f"harness cost per {size}x{size} pair over {n_pairs} pairs (ms):")
    for k, v in per_pair.items():
        echo(f"  {k:28s} {v:7.2f}")
    return per_pair
