import numpy as np
import pytest
import torch

from regbench import geometry, protocol


def _affine(rot=7.0, scale=1.1, tx=3.5, ty=-2.25, h=64, w=80):
    return geometry.centre_transform(rot, scale, tx, ty, h, w)


def test_matrix_flow_round_trip_affine_and_homography():
    a = _affine()
    f = geometry.matrix_to_flow(a, 64, 80)
    assert f.shape == (64, 80, 2)
    assert np.abs(geometry.matrix_to_flow(geometry.flow_to_matrix(f), 64, 80) - f).max() < 1e-4
    h = a.copy()
    h[2, :2] = [2e-4, -1e-4]
    fh = geometry.matrix_to_flow(h, 64, 80)
    assert np.abs(geometry.matrix_to_flow(geometry.flow_to_matrix(fh, "homography"), 64, 80) - fh).max() < 1e-4


def test_flow_definition_at_a_point():
    a = _affine()
    f = geometry.matrix_to_flow(a, 64, 80)
    p = np.array([13.0, 41.0, 1.0])
    assert np.allclose(p[:2] + f[41, 13], (a @ p)[:2], atol=1e-4)


def test_numpy_and_torch_agree():
    a = _affine()
    fn = geometry.matrix_to_flow(a, 64, 80)
    ft = geometry.matrix_to_flow(torch.tensor(a)[None].repeat(2, 1, 1), 64, 80)
    assert ft.shape == (2, 64, 80, 2)
    assert np.abs(ft[1].numpy() - fn).max() < 1e-4
    img = np.random.default_rng(0).random((64, 80)).astype(np.float32)
    wn = geometry.warp_matrix(img, a)
    wt = geometry.warp_matrix(torch.from_numpy(img)[None, None], torch.tensor(a))[0, 0].numpy()
    inside = geometry.valid_mask(fn, 64, 80)
    # compare away from the border, where OpenCV and grid_sample treat the edge differently
    core = np.zeros_like(inside)
    core[4:-4, 4:-4] = True
    assert np.abs(wn - wt)[inside & core].max() < 1e-3


def test_warp_by_matrix_equals_warp_by_its_flow():
    a = _affine()
    img = np.random.default_rng(1).random((64, 80)).astype(np.float32)
    assert np.abs(geometry.warp_matrix(img, a) - geometry.warp_flow(img, geometry.matrix_to_flow(a, 64, 80))).max() < 1e-3


def test_protocol_deformation_is_undone_by_ground_truth():
    """Warping the optical image by the GT flow reproduces the deformed SAR image."""
    rng = np.random.default_rng(2)
    import cv2

    img = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 2)
    params = {"rotation_deg": 4.0, "scale": 0.9, "tx": 5.0, "ty": -3.0}
    deformed, gt = protocol.deform(img, params)
    gt_flow = geometry.matrix_to_flow(gt, 96, 96)
    back = geometry.warp_flow(img, gt_flow)
    inside = geometry.valid_mask(gt_flow, 96, 96)
    inside[:3], inside[-3:], inside[:, :3], inside[:, -3:] = False, False, False, False
    assert np.abs(back - deformed)[inside].max() < 1e-4


def test_resize_flow_keeps_pixel_meaning():
    a = _affine(h=64, w=64)
    f64 = geometry.matrix_to_flow(a, 64, 64)
    # the same transform expressed on a grid twice as fine: coordinates x' = 2x + 0.5
    s = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
    f128 = geometry.matrix_to_flow(s @ a @ np.linalg.inv(s), 128, 128)
    up = geometry.resize_flow(f64, 128, 128)
    assert np.abs(up - f128)[8:-8, 8:-8].max() < 1e-3
    up_t = geometry.resize_flow(torch.from_numpy(f64), 128, 128).numpy()
    assert np.abs(up_t - f128)[8:-8, 8:-8].max() < 1e-3


def test_pixel_to_normalized_edges():
    pts = np.array([[-0.5, -0.5], [79.5, 63.5]], dtype=np.float32)
    assert np.allclose(geometry.pixel_to_normalized(pts, 64, 80), [[-1, -1], [1, 1]])
    with pytest.raises(ValueError):
        geometry.flow_to_matrix(np.zeros((4, 4, 2)), "spline")


def test_invert_flow_gives_the_inverse_transform():
    a = _affine(rot=4.0, scale=1.05, tx=6.0, ty=-3.0)
    inv = geometry.invert_flow(geometry.matrix_to_flow(a, 64, 80))
    truth = geometry.matrix_to_flow(np.linalg.inv(a), 64, 80)
    lands = geometry.pixel_grid(64, 80) + truth  # the SAR pixel each optical pixel shows
    inside = (lands >= 1).all(-1) & (lands[..., 0] <= 78) & (lands[..., 1] <= 62)
    assert inside.mean() > 0.6
    assert np.abs(inv - truth)[inside].max() < 5e-3  # OpenCV's bilinear weights are 1/32-px fixed point
