"""``regbench bench cfog``: CFOG's speed on one pair, and its matching stage against OpenCV's.

The matching stage (SSD surfaces of every control point) is timed side by side, in the same
repeats, against the reference loop of one ``cv2.matchTemplate(TM_SQDIFF)`` per point and channel.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import cv2
import numpy as np
import torch

from .. import protocol
from ..config import merge
from ..methods import matching
from ..methods.cfog import CFOG, CFOGConfig, ssd_surfaces
from ..types import Pair


def _bench_pair(size: int) -> Pair:
    """A corner-rich optical texture and a contrast-inverted, speckled, slightly deformed SAR copy."""
    rng = np.random.default_rng(0)
    img = sum(cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), s) * s for s in (1.5, 4.0, 12.0))
    opt = ((img - img.min()) / (img.max() - img.min())).astype(np.float32)
    sar, _ = protocol.deform(1.0 - opt, {"rotation_deg": 1.0, "scale": 1.02, "tx": 6.0, "ty": -4.0})
    sar = np.clip(sar * rng.gamma(8.0, 1 / 8.0, sar.shape), 0, 1).astype(np.float32)
    return Pair(sar, opt)


def bench_cfog(size: int = 512, n_points: int = 200, repeats: int = 7, sets: dict[str, Any] | None = None,
               echo: Callable[[str], Any] = print) -> dict[str, float]:
    """Median (and min) ms over ``repeats`` of each CFOG stage on one ``size``² pair with about
    ``n_points`` control points (grid √(n/2) × √(n/2), 2 per cell; ``sets`` overrides the config);
    prints a table, returns medians."""
    grid = max(1, round(np.sqrt(n_points / 2)))
    config = merge(CFOGConfig(grid=grid, per_cell=2, backend="dft"), sets or {})
    method = CFOG(config)
    pair = _bench_pair(size)
    sar, opt = pair.sar * 255.0, pair.opt_gray * 255.0
    t, r = config.template_size // 2, config.search_radius
    points = matching.control_points(opt, t + r + 2, config)
    ref, sen = method.features(opt), method.features(sar)
    templates, windows = matching.extract_patches(ref, points, t), matching.extract_patches(sen, points, t + r)
    stages: dict[str, Callable[[], Any]] = {
        "descriptor (both images)": lambda: (method.features(opt), method.features(sar)),
        "control points": lambda: matching.control_points(opt, t + r + 2, config),
        "matching: ours (cv2.dft, summed spectra)": lambda: ssd_surfaces(templates, windows, "dft"),
        "matching: reference (cv2.matchTemplate per channel)": lambda: ssd_surfaces(templates, windows, "matchtemplate"),
        "cfog end to end (register + dense flow)": lambda: method.register(pair).to_flow(size, size),
    }
    times: dict[str, list[float]] = {k: [] for k in stages}
    for fn in stages.values():  # warm-up
        fn()
    for _ in range(repeats):  # interleaved, so that CPU contention hits every stage alike
        for name, fn in stages.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()  # once, outside the repeats: the batched torch path is meant for GPUs
    ssd_surfaces(templates, windows, "torch", torch.device("cpu"))
    torch_ms = (time.perf_counter() - t0) * 1000
    pred = method.register(pair)
    echo(f"cfog on one {size}x{size} pair: {len(points)} control points, templates {2 * t + 1} px, windows "
         f"{2 * (t + r) + 1} px, {ref.shape[0]} channels; {torch.get_num_threads()} torch threads, "
         f"{cv2.getNumThreads()} OpenCV threads; {repeats} repeats (ms)")
    echo(f"{'stage':<55}{'median':>9}{'min':>9}")
    out: dict[str, float] = {}
    for name, values in times.items():
        out[name] = float(np.median(values))
        echo(f"{name:<55}{out[name]:>9.1f}{min(values):>9.1f}")
    echo(f"{'matching: torch.fft (cpu, batched; one run, for GPUs)':<55}{torch_ms:>9.1f}")
    ratio = out["matching: ours (cv2.dft, summed spectra)"] / out["matching: reference (cv2.matchTemplate per channel)"]
    echo(f"matching ours / reference: {ratio:.2f} (target ≤ 1); end to end target ≤ 500 ms")
    echo(f"result: {'failed: ' + pred.failed if pred.failed else 'ok'}, {pred.info}")
    out["n_points"] = float(len(points))
    out["matching_ratio"] = ratio
    return out
