"""CFOG: descriptor, FFT SSD, the control-point framework and its failures."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from regbench import geometry, metrics, protocol, registry
from regbench.methods import matching
from regbench.methods.cfog import CFOG, CFOGConfig, cfog_descriptor, ssd_surfaces
from regbench.types import Pair


def texture(size: int, seed: int = 0, blur: float = 2.0) -> np.ndarray:
    """(size, size) float32 in [0, 1]: blurred noise, corner-rich."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), blur)
    return ((img - img.min()) / (img.max() - img.min())).astype(np.float32)


def rmse_of(pred, gt: np.ndarray, shape) -> float:
    return metrics.pair_errors(None if pred.failed else pred.to_flow(*shape), geometry.matrix_to_flow(gt, *shape))["rmse"]


# --------------------------------------------------------------------------- descriptor


def test_descriptor_channel_peaks_follow_gradient_direction():
    x = np.arange(64, dtype=np.float32)
    vertical_edge = np.tile((x >= 32).astype(np.float32), (64, 1)) * 255  # gradient along +x: θ = 0°
    horizontal_edge = vertical_edge.T.copy()  # gradient along y: θ = 90°, between channels 4 (80°) and 5 (100°)
    yy, xx = np.mgrid[:64, :64].astype(np.float32)
    theta = np.deg2rad(40)
    oblique = ((np.cos(theta) * xx + np.sin(theta) * yy) >= 40).astype(np.float32) * 255  # gradient at 40°: channel 2
    d_v, d_h, d_o = (cfog_descriptor(im) for im in (vertical_edge, horizontal_edge, oblique))
    assert d_v.shape == (9, 64, 64) and d_v.dtype == np.float32
    # 0° peaks at channel 0 only when the orientation kernel wraps (orientation is π-periodic);
    # the zero padding of the Ye-group code (our default) pulls it to channel 1
    assert (cfog_descriptor(vertical_edge, circular=True)[:, 20:44, 31:33].argmax(0) == 0).all()
    assert (d_v[:, 20:44, 31:33].argmax(0) == 1).all()
    assert np.allclose(d_h[4, 31:33, 20:44], d_h[5, 31:33, 20:44], atol=1e-6)
    assert (np.isin(d_h[:, 31:33, 20:44].argmax(0), (4, 5))).all()
    on_edge = np.abs(np.cos(theta) * xx + np.sin(theta) * yy - 39.5) < 0.8
    on_edge[:8], on_edge[-8:], on_edge[:, :8], on_edge[:, -8:] = False, False, False, False
    assert (d_o.argmax(0)[on_edge] == 2).mean() > 0.9
    # L2 normalised where there is any gradient, zero where there is none
    norms = np.linalg.norm(d_v, axis=0)
    assert np.allclose(norms[:, 29:35], 1.0, atol=1e-4) and np.allclose(d_v[:, :, :20], 0)


def test_descriptor_is_invariant_to_contrast_inversion():
    img = texture(96) * 255
    assert np.allclose(cfog_descriptor(img), cfog_descriptor(255 - img), atol=1e-5)
    # and differs from a plain |gradient| only by its smoothing: a rotated image gives other channels
    assert not np.allclose(cfog_descriptor(img), cfog_descriptor(img.T.copy()), atol=1e-2)


def test_descriptor_options():
    img = texture(48) * 255
    l1 = cfog_descriptor(img, norm="l1")
    assert np.allclose(l1.sum(0)[4:-4, 4:-4], 1.0, atol=1e-4)
    circ = cfog_descriptor(img, circular=True)
    assert not np.allclose(circ, cfog_descriptor(img))
    with pytest.raises(ValueError, match="norm"):
        cfog_descriptor(img, norm="l3")


# --------------------------------------------------------------------------- FFT SSD


@pytest.mark.parametrize("backend", ["dft", "torch", "matchtemplate"])
def test_fft_ssd_equals_brute_force(backend):
    rng = np.random.default_rng(1)
    templates = rng.random((3, 4, 7, 5), dtype=np.float32)
    windows = rng.random((3, 4, 13, 11), dtype=np.float32)
    brute = np.zeros((3, 7, 7))
    for n in range(3):
        for dy in range(7):
            for dx in range(7):
                diff = windows[n, :, dy : dy + 7, dx : dx + 5].astype(np.float64) - templates[n]
                brute[n, dy, dx] = (diff**2).sum()
    got = ssd_surfaces(templates, windows, backend, torch.device("cpu"))
    assert got.shape == brute.shape
    assert np.abs(got - brute).max() <= 1e-5 * np.abs(brute).max()


def test_argmin_offsets_integer_and_subpixel():
    yy, xx = np.mgrid[-3:4, -3:4].astype(np.float64)
    cost = ((xx - 1.3) ** 2 + (yy + 0.4) ** 2)[None]
    assert np.allclose(matching.argmin_offsets(cost, subpixel=False), [[1, 0]])
    assert np.allclose(matching.argmin_offsets(cost, subpixel=True), [[1.3, -0.4]], atol=1e-9)
    nan_cost = cost.copy()
    nan_cost[0, 0, 0] = np.nan
    assert np.allclose(matching.argmin_offsets(nan_cost, subpixel=False), [[1, 0]])


# --------------------------------------------------------------------------- framework pieces


def test_control_points_are_grid_distributed_and_inside_margin():
    img = texture(256) * 255
    config = CFOGConfig()
    pts = matching.control_points(img, 72, config)
    assert 0 < len(pts) <= config.grid**2 * config.per_cell
    assert (pts >= 72).all() and (pts < 256 - 72).all()
    cells = ((pts - 72) * config.grid // (256 - 144)).astype(int)
    _, counts = np.unique(cells[:, 1] * config.grid + cells[:, 0], return_counts=True)
    assert counts.max() <= config.per_cell and len(counts) > config.grid**2 // 2
    assert len(matching.control_points(np.full((256, 256), 100, np.float32), 72, config)) == 0


@pytest.mark.parametrize("estimator", ["iterative", "ransac"])
def test_robust_fit_recovers_affine_despite_outliers(estimator):
    rng = np.random.default_rng(2)
    truth = np.array([[1.02, 0.03, 5.0], [-0.02, 0.98, -3.0], [0, 0, 1]])
    src = rng.uniform(0, 200, (100, 2))
    dst = geometry.apply_matrix(truth, src) + rng.normal(0, 0.3, (100, 2))
    bad = rng.choice(100, 25, replace=False)
    dst[bad] += rng.uniform(-20, 20, (25, 2))
    m, keep, reason = matching.robust_fit(src, dst, "affine", estimator, 1.5)
    assert reason is None
    assert np.abs(geometry.apply_matrix(m, src) - geometry.apply_matrix(truth, src)).max() < 0.5
    # the paper's criterion is an RMSE ≤ 1.5 px over the survivors, so only gross outliers must go
    off = np.linalg.norm(dst[bad] - geometry.apply_matrix(truth, src[bad]), axis=1)
    assert not keep[bad[off > 15]].any() and (off > 15).sum() >= 5
    m, _, reason = matching.robust_fit(src[:5], dst[:5], "affine", estimator, 1.5, min_inliers=8)
    assert m is None and "need at least 8" in reason


# --------------------------------------------------------------------------- the method


def test_cfog_recovers_a_known_subwindow_offset_exactly():
    big = texture(300, seed=3)
    opt = big[20:276, 30:286]
    sar = 1.0 - big[20 + 7 : 276 + 7, 30 - 5 : 286 - 5]  # inverted contrast, shifted by (−5, 7)
    # SAR pixel p shows big[p + (25, 27)]; optical pixel q shows big[q + (30, 20)]: q = p + (−5, 7)
    pred = CFOG().register(Pair(sar.copy(), opt.copy()))
    assert pred.failed is None, pred.failed
    assert np.allclose(pred.matrix, [[1, 0, -5], [0, 1, 7], [0, 0, 1]], atol=1e-9)
    assert pred.info["n_inliers"] == pred.info["n_matches"] > 50


def test_cfog_recovers_small_affine_and_torch_backend_agrees():
    opt = texture(256, seed=4)
    params = {"rotation_deg": 2.0, "scale": 1.03, "tx": 6.0, "ty": -4.0}
    sar, gt = protocol.deform(opt, params)
    preds = [CFOG(CFOGConfig(backend=b, subpixel=True, grid=6)).register(Pair(sar, opt)) for b in ("dft", "torch")]
    assert rmse_of(preds[0], gt, opt.shape) < 1.0
    assert np.allclose(preds[0].matrix, preds[1].matrix, atol=1e-4)


def test_cfog_coarse_handles_what_plain_cfog_cannot():
    opt = texture(256, seed=5)
    params = {"rotation_deg": 12.0, "scale": 1.0, "tx": 35.0, "ty": -28.0}  # a `relaxed`-protocol pair
    sar, gt = protocol.deform(opt, params)
    plain = CFOG().register(Pair(sar, opt))
    assert plain.failed or rmse_of(plain, gt, opt.shape) > 5
    coarse, spec = registry.build_method("cfog-coarse")
    assert spec.resolve_config().coarse and spec.target.endswith(":CFOG")
    pred = coarse.register(Pair(sar, opt))
    assert pred.failed is None, pred.failed
    assert abs(pred.info["coarse_angle"] - 12.0) <= 2.0
    assert rmse_of(pred, gt, opt.shape) < 1.0


def test_cfog_bad_inputs_fail_with_a_reason():
    small = texture(120)
    pred = CFOG().register(Pair(small, small))
    assert pred.failed and "too small" in pred.failed
    flat = np.full((256, 256), 0.5, np.float32)
    pred = CFOG().register(Pair(flat, flat))
    assert pred.failed and "no Harris control points" in pred.failed
    opt = texture(256, seed=6)
    pred = CFOG(CFOGConfig(min_inliers=10_000)).register(Pair(opt, opt))
    assert pred.failed and "need" in pred.failed and pred.matrix is None
    pred = CFOG(CFOGConfig(coarse=True)).register(Pair(small, small))
    assert pred.failed and "too small" in pred.failed


def test_bad_settings_are_refused_at_construction():
    with pytest.raises(ValueError, match="model"):
        CFOG(CFOGConfig(model="similarity"))
    with pytest.raises(ValueError, match="estimator"):
        CFOG(CFOGConfig(estimator="lmeds"))
    with pytest.raises(ValueError, match="backend"):
        CFOG(CFOGConfig(backend="fftw"))
