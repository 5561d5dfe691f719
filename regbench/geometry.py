"""Geometry: 3×3 matrices ↔ dense flows, warps, and the one pixel convention.

Convention (``docs/conventions.md``): x right, y down, pixel centres at integer coordinates.
A flow ``F`` (…, H, W, 2) holds (dx, dy) in pixels; *warping* an image by a flow or a matrix
samples it: ``out(p) = img(p + F(p))`` or ``out(p) = img(A·p)``. Torch warps use
``grid_sample(align_corners=False)`` with ``x_n = (2x + 1) / W − 1`` so that both backends agree.
Every function takes numpy arrays or torch tensors and returns the same kind.
"""
from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Union

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

Array = Union[np.ndarray, "torch.Tensor"]


def is_tensor(x: object) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch: no tensor exists before it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def pixel_grid(height: int, width: int, like: Array | None = None) -> Array:
    """(H, W, 2) grid of pixel-centre coordinates (x, y); torch if ``like`` is a tensor."""
    if is_tensor(like):
        import torch

        ys, xs = torch.meshgrid(
            torch.arange(height, device=like.device, dtype=like.dtype),
            torch.arange(width, device=like.device, dtype=like.dtype),
            indexing="ij",
        )
        return torch.stack((xs, ys), dim=-1)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.stack((xs, ys), axis=-1)


def apply_matrix(matrix: Array, points: Array) -> Array:
    """Apply (…, 3, 3) ``matrix`` to points (…, N, 2) → (…, N, 2), with perspective division."""
    a, t, p = matrix[..., :2, :2], matrix[..., :2, 2], matrix[..., 2, :2]
    swap = (lambda m: m.transpose(-1, -2)) if is_tensor(points) else (lambda m: np.swapaxes(m, -1, -2))
    num = points @ swap(a) + t[..., None, :]
    den = (points * p[..., None, :]).sum(-1, keepdims=True) + matrix[..., 2:3, 2:3][..., 0, :][..., None, :]
    return num / den


def matrix_to_flow(matrix: Array, height: int, width: int) -> Array:
    """Dense flow (…, H, W, 2) of a pixel transform (…, 3, 3): ``F(p) = A·p − p`` (float32)."""
    if is_tensor(matrix):
        import torch

        m = matrix.to(torch.float32)[..., None, None, :, :]  # (…, 1, 1, 3, 3)
        x = torch.arange(width, dtype=torch.float32, device=matrix.device)
        y = torch.arange(height, dtype=torch.float32, device=matrix.device)[:, None]
        stack = torch.stack
    else:
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape == (3, 3) and np.array_equal(matrix[2], [0.0, 0.0, 1.0]):
            return _affine_flow_np(matrix, height, width)
        m = matrix.astype(np.float32)[..., None, None, :, :]
        x = np.arange(width, dtype=np.float32)
        y = np.arange(height, dtype=np.float32)[:, None]
        stack = np.stack
    den = m[..., 2, 0] * x + m[..., 2, 1] * y + m[..., 2, 2]
    fx = (m[..., 0, 0] * x + m[..., 0, 1] * y + m[..., 0, 2]) / den - x
    fy = (m[..., 1, 0] * x + m[..., 1, 1] * y + m[..., 1, 2]) / den - y
    flow = stack((fx, fy), -1)
    return flow


def _affine_flow_np(matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fast path of :func:`matrix_to_flow` for one affine matrix: each component is an outer sum."""
    (a, b, c), (d, e, f) = matrix[0], matrix[1]
    x, y = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    out = np.empty((height, width, 2), np.float32)
    np.add.outer((b * y + c).astype(np.float32), ((a - 1) * x).astype(np.float32), out=out[..., 0])
    np.add.outer(((e - 1) * y + f).astype(np.float32), (d * x).astype(np.float32), out=out[..., 1])
    return out


def matrix_defect(matrix: np.ndarray, height: int, width: int, limit_px: float = 1e6) -> str | None:
    """Why a 3×3 transform has no usable flow on a (height × width) grid, or ``None``.

    A homography's denominator is linear in (x, y): it keeps one sign over the image iff it does
    at the four corners; the corners must also map to finite points within ``limit_px``.
    """
    corners = np.array([[0.0, 0.0], [width - 1.0, 0.0], [0.0, height - 1.0], [width - 1.0, height - 1.0]])
    den = corners @ matrix[2, :2] + matrix[2, 2]
    if not ((den > 1e-9).all() or (den < -1e-9).all()):
        return "matrix sends part of the image to infinity (its homography denominator changes sign)"
    mapped = apply_matrix(matrix, corners)
    if not np.isfinite(mapped).all() or np.abs(mapped).max() > limit_px:
        return f"matrix maps the image corners beyond {limit_px:g} px (degenerate transform)"
    return None


def flow_to_matrix(flow: Array, model: str = "affine") -> Array:
    """Least-squares 3×3 transform (affine or homography) that best explains a (H, W, 2) flow."""
    is_torch = is_tensor(flow)
    f = flow.detach().cpu().double().numpy() if is_torch else np.asarray(flow, dtype=np.float64)
    h, w = f.shape[:2]
    src = pixel_grid(h, w).reshape(-1, 2).astype(np.float64)
    dst = src + f.reshape(-1, 2)
    if model == "affine":
        design = np.concatenate([src, np.ones((len(src), 1))], axis=1)
        sol, *_ = np.linalg.lstsq(design, dst, rcond=None)
        m = np.eye(3)
        m[:2] = sol.T
    elif model == "homography":
        m, _ = cv2.findHomography(src, dst, 0)
    else:
        raise ValueError(f"unknown transform model {model!r}; use 'affine' or 'homography'")
    if not is_torch:
        return m
    import torch

    return torch.from_numpy(m).to(flow)


def centre_transform(angle_deg: float, scale: float, tx: float, ty: float, height: int, width: int) -> np.ndarray:
    """3×3 similarity: rotate by ``angle_deg`` (counter-clockwise on screen) and scale about the
    image centre ((W−1)/2, (H−1)/2), then translate by (tx, ty) pixels."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    # screen y points down, so a visually counter-clockwise rotation has +s under x and −s under y
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    to_centre = np.array([[1.0, 0, -cx], [0, 1.0, -cy], [0, 0, 1.0]])
    back = np.array([[1.0, 0, cx + tx], [0, 1.0, cy + ty], [0, 0, 1.0]])
    return back @ rot @ to_centre


def normalization_matrix(height: int, width: int) -> np.ndarray:
    """3×3 map from pixel coordinates to ``grid_sample`` coordinates (``align_corners=False``)."""
    return np.array([[2.0 / width, 0, 1.0 / width - 1], [0, 2.0 / height, 1.0 / height - 1], [0, 0, 1.0]])


def pixel_to_normalized(points: Array, height: int, width: int) -> Array:
    """Pixel coordinates (…, 2) → ``grid_sample`` coordinates in [−1, 1]."""
    if is_tensor(points):
        scale = points.new_tensor([2.0 / width, 2.0 / height])
    else:
        scale = np.array([2.0 / width, 2.0 / height], dtype=points.dtype)
    return (points + 0.5) * scale - 1


def resize_flow(flow: Array, height: int, width: int) -> Array:
    """Resample a flow (H0, W0, 2) or (B, H0, W0, 2) to (H, W), rescaling values to the new pixels.

    Pixel-centre convention: x on the new grid is ``(x0 + 0.5)·W/W0 − 0.5``, so flow values
    scale by W/W0 (x) and H/H0 (y).
    """
    h0, w0 = flow.shape[-3:-1]
    if (h0, w0) == (height, width):
        return flow
    sx, sy = width / w0, height / h0
    if is_tensor(flow):
        import torch.nn.functional as F

        x = flow.movedim(-1, -3)
        squeeze = x.dim() == 3
        x = F.interpolate(x[None] if squeeze else x, size=(height, width), mode="bilinear", align_corners=False)
        x = x[0] if squeeze else x
        return x.movedim(-3, -1) * x.new_tensor([sx, sy])
    out = cv2.resize(np.asarray(flow, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return out * np.array([sx, sy], dtype=np.float32)


def warp_matrix(image: Array, matrix: Array) -> Array:
    """Sample ``image`` at ``A·p`` for every pixel p: ``out(p) = image(A·p)``; zeros outside.

    numpy: (H, W) or (H, W, C) with OpenCV. torch: (B, C, H, W) with (B, 3, 3) or (3, 3).
    """
    if is_tensor(image):
        h, w = image.shape[-2:]
        m = matrix if matrix.dim() == 3 else matrix[None].expand(image.shape[0], 3, 3)
        return warp_flow(image, matrix_to_flow(m.to(image), h, w))
    h, w = image.shape[:2]
    m = np.asarray(matrix, dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if np.allclose(m[2], [0, 0, 1]):
        return cv2.warpAffine(image, m[:2], (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.warpPerspective(image, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def warp_flow(image: Array, flow: Array) -> Array:
    """Sample ``image`` at ``p + F(p)``: ``out(p) = image(p + F(p))``; zeros outside.

    numpy: image (H, W[, C]) and flow (H, W, 2), OpenCV ``remap``.
    torch: image (B, C, Hi, Wi) and flow (B, H, W, 2), ``grid_sample(align_corners=False)``;
    the flow grid may differ in size from the image (coordinates are image pixels).
    """
    if is_tensor(image):
        import torch.nn.functional as F

        h, w = flow.shape[1:3]
        hi, wi = image.shape[-2:]
        coords = pixel_grid(h, w, like=flow) + flow
        grid = pixel_to_normalized(coords, hi, wi)
        return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    grid = pixel_grid(*flow.shape[:2]) + flow
    return cv2.remap(image, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def invert_flow(flow: np.ndarray, iterations: int = 20) -> np.ndarray:
    """The inverse (H, W, 2) of a flow: ``G`` with ``q + G(q) = p`` wherever ``q = p + F(p)``.

    Fixed-point iteration ``G ← −F(q + G(q))`` (``F`` sampled bilinearly, edges replicated); it
    converges where the flow's Jacobian is small (|∇F| < 1), as for every registration flow.
    """
    flow = np.asarray(flow, np.float32)
    grid = pixel_grid(*flow.shape[:2])
    inv = -flow
    for _ in range(iterations):
        at = grid + inv
        inv = -cv2.remap(flow, at[..., 0], at[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return inv


def valid_mask(flow: Array, height: int, width: int) -> Array:
    """(…, H, W) bool: where ``p + F(p)`` falls inside a (height × width) image."""
    h, w = flow.shape[-3:-1]
    if is_tensor(flow):
        import torch

        xs = torch.arange(w, dtype=flow.dtype, device=flow.device)
        ys = torch.arange(h, dtype=flow.dtype, device=flow.device)[:, None]
        absolute = torch.abs
    else:
        xs, ys, absolute = np.arange(w, dtype=flow.dtype), np.arange(h, dtype=flow.dtype)[:, None], np.abs
    inside_x = absolute(flow[..., 0] + (xs - (width - 1) / 2)) <= width / 2
    inside_y = absolute(flow[..., 1] + (ys - (height - 1) / 2)) <= height / 2
    return inside_x & inside_y


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 luminance (ITU-R BT.601) of an (H, W) or (H, W, 3) image."""
    if image.ndim == 2:
        return image.astype(np.float32, copy=False)
    if image.shape[2] == 1:
        return image[..., 0].astype(np.float32, copy=False)
    return (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)
