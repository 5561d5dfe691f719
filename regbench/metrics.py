"""Every metric regbench reports, each defined once (SOMA's definitions; see docs/metrics.md).

Per pair (dense flow error e(p) = F̂(p) − F(p) on the SAR grid, in pixels):
* ``rmse``: sqrt(mean over all pixels of |e|²) — SOMA's per-pair RMSE; the CMR criterion.
* ``rmse_valid``: the same over pixels whose true optical location lies inside the image.
* ``epe_mean``: mean end-point error |e| over all pixels.
A failed pair has every error = inf. When both the prediction and the ground truth are affine,
the error field is affine and ``rmse`` / ``rmse_valid`` have closed forms
(:func:`affine_pair_errors`, equal to the dense definitions up to float rounding).

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
PAIR_METRICS: tuple[str, ...] = ("rmse", "rmse_valid", "epe_mean")

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
    valid = geometry.valid_mask(gt_flow, *gt_flow.shape[:2])
    return {
        "rmse": float(np.sqrt(sq.mean(dtype=np.float64))),
        "rmse_valid": float(np.sqrt(sq[valid].mean(dtype=np.float64))) if valid.any() else math.nan,
        "epe_mean": float(np.sqrt(sq).mean(dtype=np.float64)),
    }


def _power_sums(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Σ1, Σx, Σx² over the integers lo ≤ x ≤ hi (per element; empty ranges give 0)."""
    n = np.maximum(hi - lo + 1, 0)
    s1 = lambda k: k * (k + 1) / 2  # noqa: E731  Σ_{x=0..k} x
    s2 = lambda k: k * (k + 1) * (2 * k + 1) / 6  # noqa: E731
    return n, np.where(n > 0, s1(hi) - s1(lo - 1), 0.0), np.where(n > 0, s2(hi) - s2(lo - 1), 0.0)


def affine_pair_errors(pred_matrix: np.ndarray, gt_matrix: np.ndarray, height: int, width: int) -> dict[str, float]:
    """:func:`pair_errors` of an affine prediction against an affine ground truth (both 3×3
    SAR→optical), without building flows: ``e(p) = D·(x, y, 1)`` with ``D = (pred − gt)[:2]``, so
    Σ|e|² over pixel rows are sums of quadratics over integer ranges; ``rmse_valid`` takes each
    row's range of x whose true location ``gt·p`` lies inside the image (``geometry.valid_mask``);
    ``epe_mean`` is computed on the pixel grid as outer sums."""
    d = (np.asarray(pred_matrix, np.float64) - np.asarray(gt_matrix, np.float64))[:2]
    y = np.arange(height, dtype=np.float64)
    (ax, bx, cx), (ay, by, cy) = d
    beta_x, beta_y = bx * y + cx, by * y + cy  # e(x, y) = (ax·x + βx(y), ay·x + βy(y))

    def row_sums(lo: np.ndarray, hi: np.ndarray) -> float:
        n, sx, sxx = _power_sums(lo, hi)
        return float(((ax**2 + ay**2) * sxx + 2 * (ax * beta_x + ay * beta_y) * sx + (beta_x**2 + beta_y**2) * n).sum())

    lo, hi = np.zeros(height), np.full(height, width - 1.0)
    out = {"rmse": math.sqrt(max(row_sums(lo, hi), 0.0) / (height * width))}
    for row, size in ((gt_matrix[0], width), (gt_matrix[1], height)):  # |g(p) − (size−1)/2| ≤ size/2
        a, c = row[0], row[1] * y + row[2]
        lower, upper = -0.5 - c, size - 0.5 - c  # lower ≤ a·x ≤ upper
        if abs(a) < 1e-12:
            inside = (lower <= 0) & (upper >= 0)
            hi = np.where(inside, hi, -1.0)
        else:
            x0, x1 = np.minimum(lower / a, upper / a), np.maximum(lower / a, upper / a)
            lo, hi = np.maximum(lo, np.ceil(x0 - 1e-9)), np.minimum(hi, np.floor(x1 + 1e-9))
    n_valid = float(np.maximum(hi - lo + 1, 0).sum())
    out["rmse_valid"] = math.sqrt(max(row_sums(lo, hi), 0.0) / n_valid) if n_valid else math.nan
    x = np.arange(width, dtype=np.float32)
    ex = np.add.outer(beta_x.astype(np.float32), np.float32(ax) * x)
    ey = np.add.outer(beta_y.astype(np.float32), np.float32(ay) * x)
    ex *= ex
    ey *= ey
    ex += ey
    out["epe_mean"] = float(np.sqrt(ex, out=ex).sum(dtype=np.float64)) / ex.size
    return out


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
