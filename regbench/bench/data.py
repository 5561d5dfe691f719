"""``regbench bench data``: pairs per second of reading a dataset and deforming its SAR images."""
from __future__ import annotations

import time
from typing import Any, Callable

from .. import registry
from ..datasets.base import PairDataset
from ..datasets.loader import pair_loader


def bench_loading(ds: PairDataset, split: str, n: int, workers: int, protocol: str = "main") -> float:
    """Pairs per second of loading + deformation over the first ``n`` pairs of ``split``.

    The clock starts once the first pair arrives (worker start-up excluded), so it measures the
    steady rate over the remaining ``n − 1`` pairs.
    """
    ids = ds.ids(split)[:n]
    if len(ids) < 2:
        raise ValueError(f"bench_loading needs at least 2 pairs, {ds.name}/{split} has {len(ids)}")
    t0 = 0.0
    for k, _pair in enumerate(pair_loader(ds, split, ids, protocol, workers)):
        if k == 0:
            t0 = time.perf_counter()
    return (len(ids) - 1) / (time.perf_counter() - t0)


def bench_data(dataset: str, split: str = "test", limit: int | None = 200, workers: tuple[int, ...] = (0, 2),
               protocol: str = "main", sets: dict[str, Any] | None = None,
               echo: Callable[[str], Any] = print) -> list[dict[str, Any]]:
    """Loading rate of ``limit`` pairs of ``dataset``/``split`` with each number of DataLoader workers."""
    ds = registry.build_dataset(dataset, sets)
    ids = ds.ids(split)
    n = min(limit or len(ids), len(ids))
    h, w = ds.load(split, ids[0])[0].shape
    rows = []
    for n_workers in workers:
        rate = bench_loading(ds, split, n, n_workers, protocol)
        echo(f"{dataset}/{split} {h}×{w} workers={n_workers}: {rate:.1f} pairs/s ({n} pairs, protocol {protocol})")
        rows.append({"dataset": dataset, "split": split, "size": [h, w], "workers": n_workers, "pairs": n,
                     "pairs_per_s": rate})
    return rows
