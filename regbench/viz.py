"""Small diagnostic images: checkerboard overlays before/after registration and the error map."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from . import geometry


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """(H, W) image alternating ``a`` and ``b`` in ``tiles``×``tiles`` squares."""
    h, w = a.shape
    yy, xx = np.mgrid[0:h, 0:w]
    mask = ((yy * tiles // h) + (xx * tiles // w)) % 2 == 0
    return np.where(mask, a, b)


def error_map(err_px: np.ndarray, max_px: float = 5.0) -> np.ndarray:
    """(H, W, 3) uint8 BGR colour map of per-pixel end-point error, saturated at ``max_px``."""
    scaled = np.clip(err_px / max_px, 0, 1) * 255
    return cv2.applyColorMap(scaled.astype(np.uint8), cv2.COLORMAP_INFERNO)


def overlay_figure(sar: np.ndarray, opt: np.ndarray, pred_flow: np.ndarray | None, gt_flow: np.ndarray, path: Path) -> None:
    """Write ``before | after | error`` as one PNG: SAR vs optical checkerboards and the EPE map."""
    opt_gray = geometry.to_gray(opt)
    before = checkerboard(sar, opt_gray)
    if pred_flow is None:
        after = np.zeros_like(sar)
        err = np.full(sar.shape, np.inf, np.float32)
    else:
        after = checkerboard(sar, geometry.warp_flow(opt_gray, pred_flow))
        err = np.linalg.norm(pred_flow - gt_flow, axis=-1)
    to8 = lambda x: cv2.cvtColor((np.clip(x, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)  # noqa: E731
    sep = np.full((sar.shape[0], 4, 3), 255, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate([to8(before), sep, to8(after), sep, error_map(err)], axis=1))
