"""The shared control-point framework of the template-matching baselines (Ye et al., TGRS 2019).

One pipeline, so that methods differ only in their similarity:

1. Harris (Noble) control points on the optical (reference) image, block-distributed on a grid.
2. For each point, a template of the reference representation around it and a search window of the
   SAR (sensed) representation around its predicted location (identity, or a coarse estimate).
3. A method-specific *cost surface* per point (N, 2r+1, 2r+1), lower is better; its argmin (with
   an optional parabolic sub-pixel step) is the match.
4. One robust estimator (``robust_fit``) turns the matches into a SAR→optical 3×3 transform:
   the paper's iterative worst-point removal to an RMSE ≤ 1.5 px fit, or RANSAC.

Coordinates are (x, y) pixels, pixel centres at integers.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..types import Pair, Prediction
from ..config import setting
from .base import Method, MethodConfig

ESTIMATORS = ("iterative", "ransac")
MODELS = ("affine", "homography")


@dataclass
class MatchingConfig(MethodConfig):
    """Framework settings shared by every template matcher (paper defaults unless marked ours)."""

    template_size: int = setting(100, ge=3)  # template side (px); the odd side 2*(size//2)+1 is used
    search_radius: int = setting(20, ge=1)  # search ±r px around the predicted location
    grid: int = setting(10, ge=1)  # control points: grid × grid cells over the valid area ...
    per_cell: int = setting(2, ge=1)  # ... with the strongest `per_cell` Harris maxima in each (10×10×2 = 200)
    harris_sigma: float = setting(1.5, gt=0)  # integration scale; derivative scale 0.7·sigma
    harris_threshold: float = setting(0.3, ge=0)  # minimum Noble response, images on a 0..255 scale
    nms_radius: int = setting(3, ge=0)  # non-maximum suppression radius (7×7)
    subpixel: bool = False  # ours: 3-point parabolic fit at the cost minimum (paper: integer)
    model: str = setting("affine", choices=MODELS)  # fitted SAR→optical transform
    estimator: str = setting("iterative", choices=ESTIMATORS)  # paper's worst-point removal, or RANSAC
    fit_threshold: float = setting(1.5, gt=0)  # px: iterative → stop at RMSE ≤ this; ransac → inlier threshold
    min_inliers: int = setting(8, ge=3)  # fewer surviving matches → the pair fails
    refine_passes: int = setting(0, ge=0)  # ours: re-match after resampling the SAR image by the last fit


# --------------------------------------------------------------------------- control points


def harris_noble(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """(H, W) Noble corner response det(M) / (trace(M) + eps) of a (H, W) float32 image."""
    smoothed = cv2.GaussianBlur(image, (0, 0), 0.7 * sigma)
    ix = cv2.Sobel(smoothed, cv2.CV_32F, 1, 0, ksize=1, scale=0.5)  # central difference
    iy = cv2.Sobel(smoothed, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)
    size = int(6 * sigma + 1) | 1
    blur = lambda a: cv2.GaussianBlur(a, (size, size), sigma)  # noqa: E731
    ixx, iyy, ixy = blur(ix * ix), blur(iy * iy), blur(ix * iy)
    return (ixx * iyy - ixy * ixy) / (ixx + iyy + np.finfo(np.float32).eps)


def control_points(image: np.ndarray, margin: int, config: MatchingConfig) -> np.ndarray:
    """(N, 2) int (x, y) Harris maxima of ``image`` (H, W, 0..255), ≥ ``margin`` px from the border,
    at most ``per_cell`` per cell of a ``grid`` × ``grid`` partition of the valid area, strongest first."""
    h, w = image.shape
    if h - 2 * margin < 1 or w - 2 * margin < 1:
        return np.zeros((0, 2), np.int64)
    resp = harris_noble(image, config.harris_sigma)
    k = 2 * config.nms_radius + 1
    peak = (resp >= cv2.dilate(resp, np.ones((k, k), np.uint8))) & (resp > config.harris_threshold)
    inner = np.zeros_like(peak)
    inner[margin : h - margin, margin : w - margin] = True
    ys, xs = np.nonzero(peak & inner)
    if len(xs) == 0:
        return np.zeros((0, 2), np.int64)
    cell_y = (ys - margin) * config.grid // (h - 2 * margin)
    cell_x = (xs - margin) * config.grid // (w - 2 * margin)
    cell = cell_y * config.grid + cell_x
    order = np.lexsort((-resp[ys, xs], cell))  # by cell, strongest first
    cell_sorted = cell[order]
    first = np.searchsorted(cell_sorted, cell_sorted, side="left")
    rank = np.arange(len(order)) - first
    keep = order[rank < config.per_cell]
    keep = keep[np.argsort(-resp[ys[keep], xs[keep]], kind="stable")]
    return np.stack((xs[keep], ys[keep]), axis=1).astype(np.int64)


def extract_patches(image: np.ndarray, centres: np.ndarray, half: int) -> list[np.ndarray]:
    """N views (C, 2h+1, 2h+1) of a (C, H, W) array around int (x, y) ``centres`` (N, 2) that lie
    ≥ ``half`` px inside the image (views, not copies: cost functions read them once)."""
    return [image[:, y - half : y + half + 1, x - half : x + half + 1] for x, y in centres]


# --------------------------------------------------------------------------- cost surfaces → offsets


def argmin_offsets(cost: np.ndarray, subpixel: bool) -> np.ndarray:
    """(N, 2) float (dx, dy) offsets of the minima of cost surfaces (N, 2r+1, 2r+1), centre = 0.

    With ``subpixel`` a separable 3-point parabola refines each minimum (clamped to ±0.5 px);
    minima on the surface border stay integer.
    """
    n, size, _ = cost.shape
    r = size // 2
    cost = np.where(np.isfinite(cost), cost, np.inf)  # NaN (e.g. NCC of a flat patch) never wins
    flat = cost.reshape(n, -1).argmin(axis=1)
    iy, ix = np.divmod(flat, size)
    off = np.stack((ix, iy), axis=1).astype(np.float64)
    if subpixel:
        idx = np.arange(n)
        s_0 = cost[idx, iy, ix]
        for axis, pos in enumerate((ix, iy)):
            lo, hi = np.clip(pos - 1, 0, size - 1), np.clip(pos + 1, 0, size - 1)
            s_lo, s_hi = (cost[idx, iy, lo], cost[idx, iy, hi]) if axis == 0 else (cost[idx, lo, ix], cost[idx, hi, ix])
            den = s_lo - 2 * s_0 + s_hi
            ok = (pos > 0) & (pos < size - 1) & np.isfinite(den) & (den > 0)
            delta = np.where(ok, (s_lo - s_hi) / (2 * np.where(ok, den, 1)), 0.0)
            off[:, axis] += np.clip(delta, -0.5, 0.5)
    return off - r


# --------------------------------------------------------------------------- robust estimator


def _fit(src: np.ndarray, dst: np.ndarray, model: str) -> np.ndarray | None:
    """Least-squares 3×3 transform mapping src (N, 2) → dst (N, 2); None if degenerate."""
    if model == "affine":
        design = np.concatenate([src, np.ones((len(src), 1))], axis=1)
        sol, _, rank, _ = np.linalg.lstsq(design, dst, rcond=None)
        if rank < 3:
            return None
        m = np.eye(3)
        m[:2] = sol.T
        return m
    m, _ = cv2.findHomography(src, dst, 0)
    return m


def _residuals(m: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    p = np.concatenate([src, np.ones((len(src), 1))], axis=1) @ m.T
    return np.linalg.norm(p[:, :2] / p[:, 2:3] - dst, axis=1)


def robust_fit(
    src: np.ndarray, dst: np.ndarray, model: str = "affine", estimator: str = "iterative", threshold: float = 1.5, min_inliers: int = 8
) -> tuple[np.ndarray | None, np.ndarray, str | None]:
    """Robust 3×3 transform src → dst from (N, 2) point matches.

    ``iterative`` (Ye et al.'s outlier removal): fit all, drop the worst residual and refit until the
    RMSE is ≤ ``threshold``. ``ransac``: OpenCV RANSAC at ``threshold`` px, then least squares on
    the inliers. Returns (matrix or None, (N,) inlier mask, failure reason or None).
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; use one of {MODELS}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; use one of {ESTIMATORS}")
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    keep = np.zeros(len(src), bool)
    need = max(min_inliers, 3 if model == "affine" else 4)
    if len(src) < need:
        return None, keep, f"only {len(src)} matches, need at least {need}"
    if estimator == "ransac":
        if model == "affine":
            _, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold)
        else:
            _, mask = cv2.findHomography(src, dst, cv2.RANSAC, threshold)
        if mask is None:
            return None, keep, "RANSAC found no consistent transform"
        keep = mask.ravel().astype(bool)
    else:
        keep[:] = True
        while True:
            m = _fit(src[keep], dst[keep], model)
            if m is None:
                return None, keep, "degenerate control-point configuration"
            res = _residuals(m, src[keep], dst[keep])
            if np.sqrt(np.mean(res**2)) <= threshold or keep.sum() <= need:
                break
            keep[np.flatnonzero(keep)[np.argmax(res)]] = False
    if keep.sum() < need:
        return None, keep, f"only {int(keep.sum())} of {len(src)} matches survive outlier removal, need {need}"
    m = _fit(src[keep], dst[keep], model)
    if m is None or not np.isfinite(m).all():
        return None, keep, "degenerate control-point configuration"
    if estimator == "iterative" and np.sqrt(np.mean(_residuals(m, src[keep], dst[keep]) ** 2)) > threshold:
        return None, keep, f"no subset of ≥ {need} matches fits within {threshold} px"
    return m, keep, None


# --------------------------------------------------------------------------- the framework


class TemplateMatcher(Method):
    """Base of the control-point methods: subclasses give the representation and the cost."""

    Config = MatchingConfig

    def features(self, image: np.ndarray) -> np.ndarray:
        """(C, H, W) representation of a (H, W) image on a 0..255 scale."""
        return image[None]

    def cost(self, templates: list[np.ndarray], windows: list[np.ndarray]) -> np.ndarray:
        """N templates (C, t, t) and N windows (C, t+2r, t+2r) → cost surfaces (N, 2r+1, 2r+1),
        lower is better."""
        raise NotImplementedError

    def initial_transform(self, sar: np.ndarray, opt: np.ndarray) -> tuple[np.ndarray | None, dict]:
        """3×3 optical→SAR seed of the local search (identity here) and info about it; a ``None``
        seed means failure, with the reason in ``info["reason"]``."""
        return np.eye(3), {}

    def register(self, pair: Pair) -> Prediction:
        sar = pair.sar.astype(np.float32) * 255.0
        opt = pair.opt_gray.astype(np.float32) * 255.0
        seed, info = self.initial_transform(sar, opt)
        if seed is None:
            return Prediction.failure(info.pop("reason"), **info)
        pred = match_and_fit(self, sar, opt, seed, info)
        for k in range(self.config.refine_passes):
            if pred.failed:
                break
            again = match_and_fit(self, sar, opt, np.linalg.inv(pred.matrix), {**pred.info, "passes": k + 2})
            if again.failed:  # keep the last good fit and say why the refinement stopped
                pred.info["refine_failed"] = again.failed
                break
            pred = again
        return pred


def match_and_fit(method: TemplateMatcher, sar: np.ndarray, opt: np.ndarray, seed: np.ndarray, info: dict) -> Prediction:
    """Run steps 1–4 on (H, W) 0..255 images; ``seed`` (3×3) maps optical pixels to SAR pixels.

    The SAR image is resampled into the optical frame by ``seed`` first (a no-op for identity), so
    templates and windows are compared at one orientation and scale.
    """
    c = method.config
    h, w = sar.shape
    t, r = c.template_size // 2, c.search_radius
    margin = t + r + 2
    if min(h, w) < 2 * margin + 1:
        return Prediction.failure(
            f"image {w}×{h} too small for template {2 * t + 1} px + search radius {r} px (needs ≥ {2 * margin + 1} px)", **info
        )
    identity = np.allclose(seed, np.eye(3))
    sar_in = sar if identity else cv2.warpPerspective(sar, seed, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    points = control_points(opt, margin, c)
    if len(points) == 0:
        return Prediction.failure("no Harris control points in the optical image (uniform or featureless)", **info)
    ref, sen = method.features(opt), method.features(sar_in)
    templates = extract_patches(ref, points, t)
    windows = extract_patches(sen, points, t + r)
    offsets = argmin_offsets(method.cost(templates, windows), c.subpixel)
    matched = points + offsets  # in the seed-resampled SAR frame
    nodata = sar_in[np.clip(np.rint(matched[:, 1]).astype(int), 0, h - 1), np.clip(np.rint(matched[:, 0]).astype(int), 0, w - 1)] <= 0
    matched, opt_pts = matched[~nodata], points[~nodata].astype(np.float64)
    sar_pts = np.concatenate([matched, np.ones((len(matched), 1))], axis=1) @ seed.T
    sar_pts = sar_pts[:, :2] / sar_pts[:, 2:3]
    info = {**info, "n_points": int(len(points)), "n_matches": int(len(matched))}
    matrix, keep, reason = robust_fit(sar_pts, opt_pts, c.model, c.estimator, c.fit_threshold, c.min_inliers)
    info["n_inliers"] = int(keep.sum())
    if matrix is None:
        return Prediction.failure(reason or "fit failed", **info)
    return Prediction(matrix=matrix, matches=np.concatenate([sar_pts, opt_pts], axis=1), inliers=keep, info=info)
