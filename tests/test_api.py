"""The Python API: evaluate with the CLI's names, stored results as a DataFrame, one user pair."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from regbench import api, geometry, registry
from regbench.methods.base import Method
from regbench.types import Pair, Prediction

SHIFT = np.array([[1.0, 0, 4.0], [0, 1.0, -3.0], [0, 0, 1.0]])  # SAR → optical pixels


class KnownAffineFlow(Method):
    """Returns the flow of ``SHIFT`` combined with a small rotation: a dense prediction."""

    def register(self, pair: Pair) -> Prediction:
        return Prediction(flow=geometry.matrix_to_flow(ROTATED, *pair.shape))


ROTATED = SHIFT @ geometry.centre_transform(3.0, 1.0, 0.0, 0.0, 128, 128)


def texture(size: int = 128) -> np.ndarray:
    img = cv2.GaussianBlur(np.random.default_rng(3).random((size, size)).astype(np.float32), (0, 0), 1.0)
    return (img - img.min()) / (img.max() - img.min())


def test_evaluate_takes_the_cli_names_and_load_results_reads_them_back(tiny, results):
    a = api.evaluate("identity", tiny, protocol="none", results_dir=results, log_mlflow=False)
    api.evaluate("phase_correlation", tiny, split="val", protocol="main", limit=2, results_dir=results,
                 log_mlflow=False)
    df = api.load_results(results)
    assert sorted(df["method"]) == ["identity", "phase_correlation"]
    only = api.load_results(results, method="identity", protocol="none")
    assert len(only) == 1 and only.iloc[0]["cmr_1px"] == a.summary["cmr_1px"] == 1.0
    assert api.load_results(results, split="val").iloc[0]["n_pairs"] == 2
    assert api.load_results(results, dataset="nothing").empty


def test_register_one_pair_from_arrays_and_files(monkeypatch, tmp_path):
    opt = texture()
    sar = geometry.warp_matrix(opt, SHIFT)  # sar(p) = opt(SHIFT·p): SAR pixel p is optical pixel SHIFT·p
    pred, warped = api.register("phase_correlation", sar, np.repeat(opt[..., None], 3, axis=2), device="cpu")
    assert np.abs(pred.matrix - SHIFT).max() < 0.05
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(warped - opt)[inner].mean() < 0.01  # the SAR image brought onto the optical grid

    cv2.imwrite(str(tmp_path / "sar.png"), np.rint(sar * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "opt.png"), np.rint(opt * 255).astype(np.uint8))
    from_files, _ = api.register("phase_correlation", tmp_path / "sar.png", str(tmp_path / "opt.png"), device="cpu")
    assert np.abs(from_files.matrix - SHIFT).max() < 0.05

    monkeypatch.setitem(registry.METHODS, "known_flow", "test_api:KnownAffineFlow")
    sar = geometry.warp_matrix(opt, ROTATED)
    pred, warped = api.register("known_flow", sar, opt, device="cpu")
    assert pred.flow is not None  # a flow is inverted to resample the SAR image: as the matrix would
    assert np.abs(warped - geometry.warp_matrix(sar, np.linalg.inv(ROTATED)))[inner].max() < 0.01


def test_register_reports_a_failed_pair():
    pred, warped = api.register("phase_correlation", np.zeros((64, 64), np.float32), texture(64), device="cpu")
    assert pred.failed and warped is None
