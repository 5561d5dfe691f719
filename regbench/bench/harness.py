"""``regbench bench harness``: what the harness itself costs per pair, the method excluded."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import protocol, registry, runner, store, tracking
from ..types import Prediction


def bench_harness(dataset: str = "synthetic-512", n_pairs: int = 50, echo: Callable[[str], Any] = print) -> dict[str, float]:
    """Time each harness stage on the first ``n_pairs`` test pairs of ``dataset``; prints ms per pair.

    Stages: load the pair (from the dataset's on-disk cache), deform the SAR image, write the
    prediction to the cache (a dense float32 flow, the largest kind), read it back and score it,
    and one MLflow run amortised over a 200-pair split. The dataset is generated first, untimed.
    """
    ds = registry.build_dataset(dataset)
    ids = ds.ids("test")[:n_pairs]
    proto = protocol.get_protocol("main")
    deformations = {i: protocol.draw_deformation(proto, dataset, "test", i) for i in ids}
    for i in ids:
        ds.load("test", i)  # generate / warm the on-disk cache, untimed
    stages = {"load": 0.0, "deform": 0.0, "cache write": 0.0, "score": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in ids:
            t0 = time.perf_counter()
            sar, _ = ds.load("test", i)
            t1 = time.perf_counter()
            protocol.deform(sar, deformations[i])
            t2 = time.perf_counter()
            flow = np.zeros((*sar.shape, 2), np.float32)
            store.save_prediction(store.prediction_path(root, i), Prediction(flow=flow), sar.shape, 1.0, deformations[i])
            t3 = time.perf_counter()
            for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
                stages[k] += dt
        t0 = time.perf_counter()
        runner.score(root, ids, deformations)  # as the runner does: every pair of the run in one call
        stages["score"] = time.perf_counter() - t0
        per_pair = {k: v / len(ids) * 1000 for k, v in stages.items()}
        record = {"method": "bench", "dataset": dataset, "split": "test", "protocol": "main", "protocol_tag": proto.tag,
                  "seed": 0, "config_hash": "0", "device": "cpu", "device_name": "cpu", "config": {}, "versions": {},
                  "status": "ok", "summary": {"cmr_1px": 0.0}}
        csv = root / "per_pair.csv"
        csv.write_text("pair_id,rmse\n" + "".join(f"{i},1.0\n" for i in range(200)))
        tracking.log_run(record, [csv], root)  # the first run creates the store: not counted
        t0 = time.perf_counter()
        tracking.log_run(record, [csv], root)
        per_pair["mlflow (one run / 200 pairs)"] = (time.perf_counter() - t0) / 200 * 1000
    per_pair["total"] = sum(per_pair.values())
    echo(f"harness cost per pair of {dataset} ({sar.shape[1]}x{sar.shape[0]}), {len(ids)} pairs, ms:")
    for k, v in per_pair.items():
        echo(f"  {k:30s} {v:7.2f}")
    return per_pair
