"""Every metric regbench reports, each defined once (SOMA's definitions; see docs/metrics.md).

Per pair (dense flow error e(p) = F̂(p) − F(p) on the SAR grid, in pixels):
* ``rmse``: sqrt(mean over all pixels of |e|²) — SOMA's per-pair RMSE; the CMR criterion.
* ``rmse_valid``: the same over pixels whose true optical location lies inside the image.
* ``epe_mean`` / ``epe_median``: mean / median end-point error |e| over all pixels.
A failed pair has every error = inf.

Per run:
* ``cmr_{k}px`` (k = 1…5): share of pairs with ``rmse < k`` (strict), failures included.
* ``r_avg``: mean per-pair RMSE, failures included (so ``inf`` as soon as one pair failed);
  ``r_avg_ok``: the same over the pairs that did not fail; ``rmse_median``: median per-pair
  RMSE with failures included (as inf).
* ``fail_rate``: share of failed pairs.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import geometry

CMR_THRESHOLDS_PX: tuple[int, ...] = (1, 2, 3, 4, 5)
PAIR_METRICS: tuple[str, ...] = ("rmse", "rmse_valid", "epe_mean", "epe_median")

#: how run-level metrics are shown: metric -> (column header with unit, which is better, unit kind)
DISPLAY: dict[str, tuple[str, str, str]] = {
    "cmr_1px": ("CMR@1 (%)", "max", "pct"),
    "cmr_2px": ("CMR@2 (%)", "max", "pct"),
    "cmr_3px": ("CMR@3 (%)", "max", "pct"),
    "cmr_4px": ("CMR@4 (%)", "max", "pct"),
    "cmr_5px": ("CMR@5 (%)", "max", "pct"),
    "r_avg": ("R_avg (px)", "min", "px"),
    "r_avg_ok": ("R_avg ok (px)", "min", "px"),
    "rmse_median": ("RMSE median (px)", "min", "px"),
    "fail_rate": ("fail (%)", "min", "pct"),
    "runtime_ms_median": ("runtime (ms)", "min", "ms"),
    "runtime_ms_p90": ("runtime p90 (ms)", "min", "ms"),
    "load_s": ("set-up (s)", "min", "s"),
    "peak_mem_mb": ("peak mem (MB)", "min", "mb"),
}


def format_value(value: float, kind: str) -> str:
    """A metric value as tables show it: percentages ×100 with one decimal, px with two, ∞, n/a."""
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    return {"pct": f"{100 * value:.1f}", "px": f"{value:.2f}", "ms": f"{value:.1f}", "s": f"{value:.2f}",
            "mb": f"{value:.0f}"}[kind]


def pair_errors(pred_flow: np.ndarray | None, gt_flow: np.ndarray) -> dict[str, float]:
    """Errors of one pair. ``pred_flow`` (H, W, 2) or ``None`` for a failed pair."""
    if pred_flow is None:
        return {k: math.inf for k in PAIR_METRICS}
    err = pred_flow.astype(np.float32) - gt_flow
    sq = err[..., 0] ** 2 + err[..., 1] ** 2
    epe = np.sqrt(sq)
    valid = geometry.valid_mask(gt_flow, *gt_flow.shape[:2])
    return {
        "rmse": float(np.sqrt(sq.mean(dtype=np.float64))),
        "rmse_valid": float(np.sqrt(sq[valid].mean(dtype=np.float64))) if valid.any() else math.nan,
        "epe_mean": float(epe.mean(dtype=np.float64)),
        "epe_median": float(np.median(epe)),
    }


def cmr(rmse: np.ndarray, threshold_px: float) -> float:
    """Correct matching rate: share of pairs with RMSE strictly below ``threshold_px``."""
    return float((np.asarray(rmse) < threshold_px).mean()) if len(rmse) else math.nan


def summarize(table: pd.DataFrame) -> dict[str, float]:
    """Run-level metrics from the per-pair table (columns ``rmse``, ``failed``, ``runtime_ms``)."""
    rmse = table["rmse"].to_numpy(dtype=float)
    ok = np.isfinite(rmse)
    out = {f"cmr_{k}px": cmr(rmse, k) for k in CMR_THRESHOLDS_PX}
    out["r_avg"] = float(rmse.mean()) if len(rmse) else math.nan
    out["r_avg_ok"] = float(rmse[ok].mean()) if ok.any() else math.inf
    out["rmse_median"] = float(np.median(rmse)) if len(rmse) else math.nan
    out["epe_mean"] = float(table["epe_mean"][ok].mean()) if ok.any() else math.inf
    out["fail_rate"] = float((~ok).mean()) if len(rmse) else math.nan
    out["n_pairs"] = float(len(table))
    if "runtime_ms" in table:
        out.update(runtime_summary(table["runtime_ms"].to_numpy(dtype=float)))
    return out


def runtime_summary(runtime_ms: np.ndarray) -> dict[str, float]:
    """Median and 90th percentile of per-pair ``register`` times (NaN entries ignored)."""
    t = runtime_ms[np.isfinite(runtime_ms)]
    if not len(t):
        return {"runtime_ms_median": math.nan, "runtime_ms_p90": math.nan}
    return {"runtime_ms_median": float(np.median(t)), "runtime_ms_p90": float(np.percentile(t, 90))}
