"""The other classical cross-modal baselines: ``mi``, ``ncc``, ``cfog-pc``, ``ecc``, ``sift-ransac``.

``mi`` and ``ncc`` share CFOG's control-point framework (``matching.py``) and differ only in their
similarity; ``sift-ransac`` uses the framework's robust estimator. ``cfog-pc`` and ``ecc`` are
global (one transform from the whole images).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from ..types import Pair, Prediction
from .base import Method, MethodConfig
from .cfog import cfog_descriptor
from ..config import setting
from .matching import ESTIMATORS, MODELS, MatchingConfig, TemplateMatcher, robust_fit

# --------------------------------------------------------------------------- ncc


class NCC(TemplateMatcher):
    """Zero-normalised cross-correlation of raw intensities (``cv2.TM_CCOEFF_NORMED``) per template."""

    def cost(self, templates: list[np.ndarray], windows: list[np.ndarray]) -> np.ndarray:
        return -np.stack([cv2.matchTemplate(w[0], t[0], cv2.TM_CCOEFF_NORMED) for t, w in zip(templates, windows)])


# --------------------------------------------------------------------------- mi


@dataclass
class MIConfig(MatchingConfig):
    bins: int = setting(16, ge=2)  # grey levels after per-patch min–max quantisation (Ye-group code: 128)


def quantize(patches: np.ndarray, bins: int) -> np.ndarray:
    """(N, H, W) → int bins in [0, bins) after per-patch min–max normalisation."""
    lo = patches.min(axis=(1, 2), keepdims=True)
    span = patches.max(axis=(1, 2), keepdims=True) - lo
    q = (patches - lo) / np.where(span > 0, span, 1) * bins
    return np.minimum(q.astype(np.int64), bins - 1)


def mutual_information_surfaces(templates: np.ndarray, windows: np.ndarray, bins: int) -> np.ndarray:
    """MI (nats) of each template (N, ht, wt) with each same-size sub-window of windows (N, Hs, Ws)
    → (N, Hs−ht+1, Ws−wt+1).

    The joint histogram at every offset u is a cross-correlation of bin indicator images,
    H_ij(u) = Σ_x [T(x) = i]·[S(x+u) = j], computed for all (i, j) with FFTs.
    """
    n, th, tw = templates.shape
    hs, ws = windows.shape[1:]
    oh, ow = hs - th + 1, ws - tw + 1
    size = (cv2.getOptimalDFTSize(hs), cv2.getOptimalDFTSize(ws))
    levels = np.arange(bins)[:, None, None]
    out = np.empty((n, oh, ow), np.float64)
    for k, (t, w) in enumerate(zip(quantize(templates, bins), quantize(windows, bins))):
        ft = np.fft.rfft2((t[None] == levels).astype(np.float32), s=size)  # (K, fh, fw')
        fw = np.fft.rfft2((w[None] == levels).astype(np.float32), s=size)
        joint = np.fft.irfft2(fw[None] * ft[:, None].conj(), s=size)[..., :oh, :ow]  # (Ki, Kj, oh, ow)
        p = np.clip(np.rint(joint), 0, None) / (th * tw)
        pi = p.sum(1, keepdims=True)
        pj = p.sum(0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[k] = np.where(p > 0, p * np.log(p / (pi * pj)), 0.0).sum((0, 1))
    return out


class MutualInformation(TemplateMatcher):
    """Mutual-information template matching (Ye-group MI baseline) in the shared framework."""

    Config = MIConfig

    def cost(self, templates: list[np.ndarray], windows: list[np.ndarray]) -> np.ndarray:
        return -mutual_information_surfaces(np.stack([t[0] for t in templates]), np.stack([w[0] for w in windows]), self.config.bins)


# --------------------------------------------------------------------------- cfog-pc


@dataclass
class CFOGPhaseCorrelationConfig(MethodConfig):
    n_orient: int = setting(9, ge=1)
    sigma: float = setting(0.8, gt=0)
    z_kernel: tuple[float, ...] = (1.0, 2.0, 1.0)
    window: bool = True  # Hann window against the edge effects of zero-filled borders


def parabolic_peak(surface: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    """Sub-pixel (dy, dx) of a maximum at (iy, ix) of a periodic surface, by 3-point parabolas."""
    h, w = surface.shape
    deltas = []
    for lo, mid, hi in (
        (surface[(iy - 1) % h, ix], surface[iy, ix], surface[(iy + 1) % h, ix]),
        (surface[iy, (ix - 1) % w], surface[iy, ix], surface[iy, (ix + 1) % w]),
    ):
        den = lo - 2 * mid + hi
        deltas.append(float(np.clip((lo - hi) / (2 * den), -0.5, 0.5)) if den < 0 else 0.0)
    return deltas[0], deltas[1]


class CFOGPhaseCorrelation(Method):
    """One global translation from phase correlation summed over the CFOG channels (ours: the
    cross-power spectra of the 9 channels are summed before whitening)."""

    Config = CFOGPhaseCorrelationConfig

    def register(self, pair: Pair) -> Prediction:
        c = self.config
        sar, opt = pair.sar * 255.0, pair.opt_gray * 255.0
        if not (sar.std() > 0 and opt.std() > 0):
            return Prediction.failure("an image is uniform: phase correlation has no peak")
        d_sar = cfog_descriptor(sar, c.n_orient, c.sigma, tuple(c.z_kernel))
        d_opt = cfog_descriptor(opt, c.n_orient, c.sigma, tuple(c.z_kernel))
        if c.window:
            win = cv2.createHanningWindow(sar.shape[::-1], cv2.CV_32F)
            d_sar, d_opt = d_sar * win, d_opt * win
        cross = (np.fft.rfft2(d_opt) * np.fft.rfft2(d_sar).conj()).sum(0)
        mag = np.abs(cross)
        if not mag.max() > 0:
            return Prediction.failure("CFOG channels are empty: no gradients to correlate")
        surface = np.fft.irfft2(cross / np.maximum(mag, mag.max() * 1e-12), s=sar.shape)
        iy, ix = np.unravel_index(int(surface.argmax()), surface.shape)
        fy, fx = parabolic_peak(surface, iy, ix)
        h, w = sar.shape
        dy = (iy + h // 2) % h - h // 2 + fy  # wrap to [−H/2, H/2)
        dx = (ix + w // 2) % w - w // 2 + fx
        # surface(u) = Σ opt(x + u)·sar(x): the SAR pixel x sits at x + u in the optical image
        return Prediction(matrix=np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]]), info={"peak": float(surface.max())})


# --------------------------------------------------------------------------- ecc


@dataclass
class ECCConfig(MethodConfig):
    motion: str = setting("affine", choices=("translation", "euclidean", "affine", "homography"))
    levels: int = setting(4, ge=1)  # pyramid levels (OpenCV default)
    iterations: int = setting(100, ge=1)  # per level
    eps: float = setting(1e-6, gt=0)
    gauss_size: int = setting(5, ge=1)  # Gaussian pre-filter (OpenCV default)


MOTIONS = {"translation": cv2.MOTION_TRANSLATION, "euclidean": cv2.MOTION_EUCLIDEAN, "affine": cv2.MOTION_AFFINE,
           "homography": cv2.MOTION_HOMOGRAPHY}


class ECC(Method):
    """Enhanced correlation coefficient maximisation (OpenCV ``findTransformECCMultiScale``),
    optical = reference, SAR = sample, identity start."""

    Config = ECCConfig

    def register(self, pair: Pair) -> Prediction:
        c = self.config
        sar, opt = pair.sar.astype(np.float32), pair.opt_gray.astype(np.float32)
        if not (sar.std() > 0 and opt.std() > 0):
            return Prediction.failure("an image is uniform: ECC has no gradient to follow")
        params = cv2.ECCParameters()
        params.motionType = MOTIONS[c.motion]
        params.nlevels = c.levels
        params.criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, c.iterations, c.eps)
        params.gaussFiltSize = c.gauss_size
        try:
            cc, warp = cv2.findTransformECCMultiScale(opt, sar, np.eye(3 if c.motion == "homography" else 2, 3, dtype=np.float32), params)
        except cv2.error as e:  # e.g. "... error: (-7:Iterations do not converge) The algorithm ... in function ..."
            found = re.search(r"\(-?\d+:([^)]*)\)\s*(.*?)(?: in function|$)", str(e).strip())
            return Prediction.failure("ECC failed: " + (": ".join(found.groups()) if found else str(e).strip()))
        warp = np.vstack([np.asarray(warp, np.float64), [0, 0, 1]])[:3]
        if not np.isfinite(warp).all() or abs(np.linalg.det(warp)) < 1e-6:
            return Prediction.failure("ECC returned a degenerate warp")
        # warp maps optical (reference) pixels to SAR (sample) pixels
        return Prediction(matrix=np.linalg.inv(warp), info={"ecc": float(cc)})


# --------------------------------------------------------------------------- sift-ransac


@dataclass
class SIFTConfig(MethodConfig):
    n_features: int = setting(0, ge=0)  # 0: all
    contrast_threshold: float = setting(0.04, ge=0)  # OpenCV defaults
    edge_threshold: float = setting(10.0, gt=0)
    ratio: float = setting(0.8, gt=0, le=1)  # Lowe's ratio test
    model: str = setting("affine", choices=MODELS)
    estimator: str = setting("ransac", choices=ESTIMATORS)
    fit_threshold: float = setting(3.0, gt=0)  # px
    min_inliers: int = setting(8, ge=3)


class SIFTRansac(Method):
    """SIFT keypoints on both images, nearest-neighbour matching with the ratio test, and the shared
    robust estimator (RANSAC by default)."""

    Config = SIFTConfig

    def register(self, pair: Pair) -> Prediction:
        c = self.config
        sift = cv2.SIFT_create(nfeatures=c.n_features, contrastThreshold=c.contrast_threshold, edgeThreshold=c.edge_threshold)
        to8 = lambda im: np.clip(np.rint(im * 255), 0, 255).astype(np.uint8)  # noqa: E731
        kp_s, des_s = sift.detectAndCompute(to8(pair.sar), None)
        kp_o, des_o = sift.detectAndCompute(to8(pair.opt_gray), None)
        if des_s is None or des_o is None or len(kp_s) < 2 or len(kp_o) < 2:
            return Prediction.failure(f"too few SIFT keypoints (SAR {len(kp_s)}, optical {len(kp_o)})")
        knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(des_s, des_o, k=2)
        good = [m for m, n in (p for p in knn if len(p) == 2) if m.distance < c.ratio * n.distance]
        src = np.array([kp_s[m.queryIdx].pt for m in good], np.float64).reshape(-1, 2)
        dst = np.array([kp_o[m.trainIdx].pt for m in good], np.float64).reshape(-1, 2)
        info = {"n_keypoints": [len(kp_s), len(kp_o)], "n_matches": len(good)}
        matrix, keep, reason = robust_fit(src, dst, c.model, c.estimator, c.fit_threshold, c.min_inliers)
        info["n_inliers"] = int(keep.sum())
        if matrix is None:
            return Prediction.failure(reason or "fit failed", **info)
        return Prediction(matrix=matrix, matches=np.concatenate([src, dst], axis=1), inliers=keep, info=info)
