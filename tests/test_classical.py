"""mi, ncc, cfog-pc, ecc, sift-ransac: each recovers an easy known transform and fails cleanly."""
from __future__ import annotations

import numpy as np
import pytest

from regbench import protocol, registry
from regbench.methods.classical import mutual_information_surfaces, quantize
from regbench.types import Pair

from test_cfog import rmse_of, texture

EASY = {"rotation_deg": 2.0, "scale": 1.03, "tx": 5.0, "ty": -3.0}


@pytest.fixture(scope="module")
def easy_pair():
    """A mono-modal pair (so every method should work): a texture and its deformed copy."""
    opt = texture(256, seed=11)
    sar, gt = protocol.deform(opt, EASY)
    return Pair(sar, opt), gt


@pytest.mark.parametrize(
    "name, sets, tolerance",
    [
        ("ncc", {"subpixel": True}, 1.0),
        ("mi", {"subpixel": True, "grid": 5, "per_cell": 2}, 1.0),
        ("ecc", {}, 0.1),
        ("sift-ransac", {}, 0.5),
    ],
)
def test_method_recovers_a_small_affine(easy_pair, name, sets, tolerance):
    pair, gt = easy_pair
    method, _ = registry.build_method(name, sets)
    pred = method.register(pair)
    assert pred.failed is None, pred.failed
    assert rmse_of(pred, gt, pair.shape) < tolerance


def test_cfog_pc_recovers_a_translation_through_contrast_inversion():
    opt = texture(256, seed=12)
    params = {"rotation_deg": 0.0, "scale": 1.0, "tx": 9.4, "ty": -6.7}
    sar, gt = protocol.deform(1.0 - opt, params)
    pred, _ = registry.build_method("cfog-pc")
    out = pred.register(Pair(sar, opt))
    assert out.failed is None and rmse_of(out, gt, opt.shape) < 0.3


def test_mutual_information_surface_equals_brute_force():
    rng = np.random.default_rng(5)
    templates = rng.random((2, 6, 5)).astype(np.float32)
    windows = rng.random((2, 10, 9)).astype(np.float32)
    bins = 4
    got = mutual_information_surfaces(templates, windows, bins)
    tq, wq = quantize(templates, bins), quantize(windows, bins)
    for n in range(2):
        for dy in range(5):
            for dx in range(5):
                joint = np.zeros((bins, bins))
                np.add.at(joint, (tq[n].ravel(), wq[n, dy : dy + 6, dx : dx + 5].ravel()), 1)
                p = joint / joint.sum()
                pi, pj = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
                nz = p > 0
                mi = (p[nz] * np.log(p[nz] / (pi @ pj)[nz])).sum()
                assert abs(got[n, dy, dx] - mi) < 1e-6


@pytest.mark.parametrize("name", ["ncc", "mi", "cfog-pc", "ecc", "sift-ransac"])
def test_uniform_images_fail_with_a_reason(name):
    flat = np.full((256, 256), 0.5, np.float32)
    method, _ = registry.build_method(name)
    pred = method.register(Pair(flat, flat))
    assert pred.failed and pred.matrix is None and pred.flow is None


@pytest.mark.parametrize("name", ["ncc", "mi"])
def test_template_methods_refuse_too_small_images(name):
    small = texture(100)
    method, _ = registry.build_method(name)
    pred = method.register(Pair(small, small))
    assert pred.failed and "too small" in pred.failed


def test_sift_fails_on_unrelated_images():
    method, _ = registry.build_method("sift-ransac")
    pred = method.register(Pair(texture(256, seed=1), texture(256, seed=2)))
    assert pred.failed and "need" in pred.failed
