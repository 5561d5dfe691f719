"""``cfog``: Channel Features of Orientated Gradients + FFT SSD template matching.

Ye, Bruzzone, Shan, Bovolo, Zhu, "Fast and Robust Matching for Multimodal Remote Sensing Image
Registration", IEEE TGRS 57(11), 2019. Implemented from the paper's description (the authors'
code is patented, research use only, and was not used).

Descriptor: 9 channels |cos θ·gx + sin θ·gy| (θ = kπ/9; |·| makes it invariant to the contrast
inversions between SAR and optical), a 2D Gaussian (σ = 0.8, 5×5) per channel, a short kernel
across orientations ([1, 2, 1]), per-pixel L2 normalisation. Similarity: the sum of squared
differences over all channels, computed with FFTs, inside the control-point framework of
``matching.py``. ``coarse=True`` (the ``cfog-coarse`` variant, ours) first finds a global
translation and, optionally, a rotation by the same FFT SSD at reduced resolution.
"""
from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from .. import geometry
from ..config import setting
from .matching import MatchingConfig, TemplateMatcher

SSD_BACKENDS = ("auto", "dft", "torch", "matchtemplate")

# --------------------------------------------------------------------------- descriptor


def cfog_descriptor(
    image: np.ndarray,
    n_orient: int = 9,
    sigma: float = 0.8,
    z_kernel: tuple[float, ...] = (1.0, 2.0, 1.0),
    norm: str = "l2",
    circular: bool = False,
    eps: float = 1e-9,
) -> np.ndarray:
    """CFOG of a (H, W) image (any scale) → (n_orient, H, W) float32.

    ``z_kernel`` (odd length) smooths across orientation channels with zero padding at 0°/180°
    (the Ye-group code) or, with ``circular``, wrapping (orientation is π-periodic).
    ``norm``: ``l2`` (paper) or ``l1`` per pixel over channels.
    """
    img = np.asarray(image, np.float32)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=1, borderType=cv2.BORDER_REFLECT)  # [-1, 0, 1]
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=1, borderType=cv2.BORDER_REFLECT)
    theta = np.arange(n_orient) * np.pi / n_orient
    size = max(1, int(6 * sigma + 1)) | 1
    chans = np.empty((n_orient, *img.shape), np.float32)
    for k, (c, s) in enumerate(zip(np.cos(theta), np.sin(theta))):
        chans[k] = cv2.GaussianBlur(np.abs(c * gx + s * gy), (size, size), sigma, borderType=cv2.BORDER_REFLECT)
    half = len(z_kernel) // 2
    pad = np.concatenate([chans[-half:], chans, chans[:half]]) if circular else np.pad(chans, ((half, half), (0, 0), (0, 0)))
    out = sum(np.float32(z) * pad[i : i + n_orient] for i, z in enumerate(z_kernel))
    if norm == "l2":
        denom = np.sqrt(np.einsum("khw,khw->hw", out, out))
    elif norm == "l1":
        denom = out.sum(0)
    else:
        raise ValueError(f"unknown norm {norm!r}; use 'l2' or 'l1'")
    return (out / (denom + eps)).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- SSD surfaces


def _ssd_dft_points(templates: Sequence[np.ndarray], windows: Sequence[np.ndarray], out: np.ndarray, points: range) -> None:
    """SSD surfaces of ``points`` into ``out`` (N, oh, ow); see :func:`ssd_dft`."""
    th, tw = templates[0].shape[1:]
    hs, ws = windows[0].shape[1:]
    oh, ow = out.shape[1:]
    fh, fw = cv2.getOptimalDFTSize(hs), cv2.getOptimalDFTSize(ws)
    tbuf, sbuf, spec = (np.zeros((fh, fw), np.float32) for _ in range(3))
    energy = np.zeros((hs, ws), np.float64)
    for i in points:
        spec[:] = 0
        energy[:] = 0
        t2 = 0.0
        for t_c, s_c in zip(templates[i], windows[i]):
            tbuf[:th, :tw] = t_c
            sbuf[:hs, :ws] = s_c
            cv2.add(spec, cv2.mulSpectrums(cv2.dft(sbuf), cv2.dft(tbuf), 0, conjB=True), dst=spec)
            cv2.accumulateSquare(s_c, energy)
            t2 += cv2.norm(t_c, cv2.NORM_L2SQR)
        corr = cv2.idft(spec, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)[:oh, :ow]
        ii = cv2.integral(energy, sdepth=cv2.CV_64F)
        box = ii[th:, tw:] - ii[:-th, tw:] - ii[th:, :-tw] + ii[:-th, :-tw]
        out[i] = t2 + box - 2.0 * corr


def ssd_dft(templates: Sequence[np.ndarray], windows: Sequence[np.ndarray], threads: int = 0) -> np.ndarray:
    """SSD surfaces (N, Hs−ht+1, Ws−wt+1) of N templates (C, ht, wt) slid over N windows (C, Hs, Ws).

    SSD(u) = ΣT² + Σ_{box at u} S² − 2·Σ_c (T_c ⋆ S_c)(u). The correlation takes one real
    ``cv2.dft`` per channel of each template and window (zero-padded to an optimal DFT size), sums
    the channel spectra products and takes one inverse DFT per point; the window energy comes from
    an integral image. Points are split over ``threads`` (0: one per CPU core; OpenCV releases
    the GIL). Templates and windows may be views (no copies are made).
    """
    n = len(templates)
    th, tw = templates[0].shape[1:]
    hs, ws = windows[0].shape[1:]
    out = np.empty((n, hs - th + 1, ws - tw + 1), np.float32)
    threads = min(n, threads or os.cpu_count() or 1)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda k: _ssd_dft_points(templates, windows, out, range(k, n, threads)), range(threads)))
    else:
        _ssd_dft_points(templates, windows, out, range(n))
    return out


def ssd_torch(templates: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """:func:`ssd_dft` batched with ``torch.fft`` on any device: (N, C, ht, wt), (N, C, Hs, Ws) → (N, oh, ow)."""
    th, tw = templates.shape[2:]
    hs, ws = windows.shape[2:]
    oh, ow = hs - th + 1, ws - tw + 1
    size = (cv2.getOptimalDFTSize(hs), cv2.getOptimalDFTSize(ws))
    ft = torch.fft.rfft2(templates, s=size)
    fs = torch.fft.rfft2(windows, s=size)
    corr = torch.fft.irfft2((fs * ft.conj()).sum(1), s=size)[:, :oh, :ow]
    ii = torch.nn.functional.pad((windows * windows).sum(1).double().cumsum(1).cumsum(2), (1, 0, 1, 0))  # integral image
    energy = ii[:, th:, tw:] - ii[:, :-th, tw:] - ii[:, th:, :-tw] + ii[:, :-th, :-tw]
    t2 = (templates.double() ** 2).sum((1, 2, 3))
    return (t2[:, None, None] + energy - 2 * corr).float()


def ssd_matchtemplate(templates: Sequence[np.ndarray], windows: Sequence[np.ndarray]) -> np.ndarray:
    """Reference: one ``cv2.matchTemplate(TM_SQDIFF)`` per point and channel, summed over channels
    (OpenCV refuses more than 4 channels in one call)."""
    return np.stack(
        [sum(cv2.matchTemplate(w_c, t_c, cv2.TM_SQDIFF) for t_c, w_c in zip(t, w)) for t, w in zip(templates, windows)]
    )


def ssd_surfaces(
    templates: Sequence[np.ndarray], windows: Sequence[np.ndarray], backend: str = "dft", device: torch.device | None = None
) -> np.ndarray:
    """SSD surfaces (N, oh, ow) of N templates (C, ht, wt) in N windows (C, Hs, Ws) by ``backend``:
    ``dft`` / ``matchtemplate`` (CPU), ``torch`` (on ``device``)."""
    if backend == "dft":
        return ssd_dft(templates, windows)
    if backend == "matchtemplate":
        return ssd_matchtemplate(templates, windows)
    if backend == "torch":
        dev = device or torch.device("cpu")
        out = ssd_torch(torch.from_numpy(np.stack(templates)).to(dev), torch.from_numpy(np.stack(windows)).to(dev))
        return out.cpu().numpy()
    raise ValueError(f"unknown SSD backend {backend!r}; use one of {SSD_BACKENDS}")


# --------------------------------------------------------------------------- the method


@dataclass
class CFOGConfig(MatchingConfig):
    n_orient: int = setting(9, ge=1)
    sigma: float = setting(0.8, gt=0)  # spatial Gaussian, kernel int(6σ+1) = 5
    z_kernel: tuple[float, ...] = (1.0, 2.0, 1.0)  # across orientations (Ye-group code: 1, 3, 1)
    norm: str = setting("l2", choices=("l2", "l1"))  # per-pixel normalisation: l2 (paper) | l1
    circular: bool = False  # wrap the orientation kernel at 0°/180° (ours; the code zero-pads)
    backend: str = setting("auto", choices=SSD_BACKENDS)  # SSD engine: auto (torch on GPU, else dft) | dft | torch | matchtemplate
    # ours: coarse global step before the local matching (the cfog-coarse variant)
    coarse: bool = False
    coarse_downsample: int = setting(2, ge=1)  # resolution divisor of the global search
    coarse_crop: float = setting(0.5, gt=0, le=1)  # side of the central optical template, as a fraction of the image
    coarse_max_rotation: float = setting(0.0, ge=0)  # rotation sweep ±max degrees (0: translation only)
    coarse_rotation_step: float = setting(2.0, gt=0)  # degrees
    coarse_scales: tuple[float, ...] = setting((1.0,), gt=0)  # scale sweep of the global step


class CFOG(TemplateMatcher):
    """CFOG descriptor + FFT SSD in the shared control-point framework."""

    Config = CFOGConfig

    def features(self, image: np.ndarray) -> np.ndarray:
        c = self.config
        return cfog_descriptor(image, c.n_orient, c.sigma, tuple(c.z_kernel), c.norm, c.circular)

    @property
    def backend(self) -> str:
        if self.config.backend == "auto":
            return "torch" if self.device.type == "cuda" else "dft"
        return self.config.backend

    def cost(self, templates: list[np.ndarray], windows: list[np.ndarray]) -> np.ndarray:
        return ssd_surfaces(templates, windows, self.backend, self.device)

    def initial_transform(self, sar: np.ndarray, opt: np.ndarray) -> tuple[np.ndarray | None, dict]:
        if not self.config.coarse:
            return np.eye(3), {}
        return coarse_seed(self, sar, opt)


def coarse_seed(method: CFOG, sar: np.ndarray, opt: np.ndarray) -> tuple[np.ndarray | None, dict]:
    """Global step (ours): the central optical crop's CFOG searched over the whole SAR CFOG by FFT
    SSD at 1/``coarse_downsample`` resolution, for each (angle, scale) of the sweep; the SAR image
    is resampled by each candidate similarity about its centre before its CFOG is computed.

    Returns the 3×3 optical→SAR seed (full resolution) and info, or (None, info with a reason).
    """
    c = method.config
    h, w = sar.shape
    small_w, small_h = max(1, round(w / c.coarse_downsample)), max(1, round(h / c.coarse_downsample))
    opt_s = cv2.resize(opt, (small_w, small_h), interpolation=cv2.INTER_AREA)
    sar_s = cv2.resize(sar, (small_w, small_h), interpolation=cv2.INTER_AREA)
    half_h, half_w = int(small_h * c.coarse_crop) // 2, int(small_w * c.coarse_crop) // 2
    cy, cx = small_h // 2, small_w // 2
    if half_h < 4 or half_w < 4 or small_h - (2 * half_h + 1) < 2 or small_w - (2 * half_w + 1) < 2:
        return None, {"reason": f"image {w}×{h} too small for the coarse global search"}
    template = method.features(opt_s)[None, :, cy - half_h : cy + half_h + 1, cx - half_w : cx + half_w + 1]
    steps = int(np.floor(c.coarse_max_rotation / c.coarse_rotation_step + 1e-9)) if c.coarse_max_rotation > 0 else 0
    angles = np.arange(-steps, steps + 1) * c.coarse_rotation_step
    best: tuple[float, tuple[float, float], np.ndarray] | None = None
    for angle, scale in itertools.product(angles, c.coarse_scales):
        sim = geometry.centre_transform(float(angle), float(scale), 0.0, 0.0, small_h, small_w)
        sar_sim = geometry.warp_matrix(sar_s, sim)  # sar_sim(p) = sar_s(sim·p)
        cost = ssd_surfaces(template, method.features(sar_sim)[None], method.backend, method.device)[0]
        iy, ix = np.unravel_index(int(cost.argmin()), cost.shape)
        # the crop centred at (cx, cy) matches the window centred at (ix + half_w, iy + half_h)
        dx, dy = ix + half_w - cx, iy + half_h - cy
        shift = np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]])
        if best is None or cost.min() < best[0]:
            best = (float(cost.min()), (float(angle), float(scale)), sim @ shift)
    assert best is not None
    sx, sy = small_w / w, small_h / h
    to_small = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    seed = np.linalg.inv(to_small) @ best[2] @ to_small
    centre = np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    moved = seed @ centre
    info = {"coarse_angle": best[1][0], "coarse_scale": best[1][1], "coarse_centre_shift": (moved[:2] - centre[:2]).round(2).tolist()}
    return seed, info
