"""Geometry and deformable-convolution primitives shared by SOMA's modules.

Units (one convention for every level): a flow is stored channel-first, (B, 2, h, w), holding
(dx, dy) in **pixels of the full-resolution input grid** (H, W), whatever the level's own grid
(h, w) = (H/s, W/s). The centre of level pixel (i, j) sits at full-resolution pixel
((j + 0.5)·s − 0.5, (i + 0.5)·s − 0.5). An affine θ (B, 2, 3) acts on ``grid_sample``
coordinates (``align_corners=False``, ``regbench.geometry.pixel_to_normalized``), which are the
same at every level, so one θ describes the same motion on every grid.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...geometry import normalization_matrix, pixel_to_normalized


def level_centres(h: int, w: int, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """(h, w, 2) full-resolution pixel coordinates (x, y) of the centres of an (h, w) level grid."""
    sy, sx = size[0] / h, size[1] / w
    ys = (torch.arange(h, device=like.device, dtype=torch.float32) + 0.5) * sy - 0.5
    xs = (torch.arange(w, device=like.device, dtype=torch.float32) + 0.5) * sx - 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1)


def warp(feat: torch.Tensor, flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Sample ``feat`` (B, C, h, w) at p + F(p) for every level pixel p; zeros outside.

    ``flow`` (B, 2, h, w) is in full-resolution pixels of an input of ``size`` (H, W).
    """
    h, w = feat.shape[-2:]
    coords = level_centres(h, w, size, flow) + flow.float().permute(0, 2, 3, 1)
    grid = pixel_to_normalized(coords, *size)
    out = F.grid_sample(feat.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(feat.dtype)  # sampled in fp32: fp16 coordinates are off by up to 0.25 px at 512


def upsample_flow(flow: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resample a flow (B, 2, h0, w0) onto an (h, w) grid; values keep their full-resolution unit."""
    if flow.shape[-2:] == (h, w):
        return flow
    return F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)


def identity_theta(batch: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) identity affines."""
    return torch.eye(2, 3, device=like.device, dtype=torch.float32).expand(batch, 2, 3).clone()


def compose(theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """θ̄·Δ̄ (top two rows): first Δ (estimated on the grid already warped by θ), then θ."""
    bottom = theta.new_tensor([0.0, 0.0, 1.0]).expand(theta.shape[0], 1, 3)
    return (torch.cat((theta, bottom), 1) @ torch.cat((delta, bottom), 1))[:, :2]


def invert(theta: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) inverse affines."""
    bottom = theta.new_tensor([0.0, 0.0, 1.0]).expand(theta.shape[0], 1, 3)
    return torch.linalg.inv(torch.cat((theta, bottom), 1))[:, :2]


def apply_theta(theta: torch.Tensor, points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Map full-resolution pixel points (B, h, w, 2) through θ (B, 2, 3) → pixels (B, h, w, 2)."""
    height, width = size
    pn = pixel_to_normalized(points, height, width)
    qn = torch.einsum("bij,bhwj->bhwi", theta[:, :, :2].float(), pn) + theta[:, None, None, :, 2].float()
    return (qn + 1) * qn.new_tensor([width / 2.0, height / 2.0]) - 0.5


def theta_flow(theta: torch.Tensor, h: int, w: int, size: tuple[int, int]) -> torch.Tensor:
    """Flow (B, 2, h, w), full-resolution pixels, of the affine θ at the centres of an (h, w) grid."""
    p = level_centres(h, w, size, theta).expand(theta.shape[0], h, w, 2)
    return (apply_theta(theta, p, size) - p).permute(0, 3, 1, 2)


def theta_to_matrix(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, 3) pixel matrices A = N⁻¹·θ̄·N of an input of ``size`` (maps SAR to optical pixels)."""
    n = torch.as_tensor(normalization_matrix(*size), dtype=torch.float64, device=theta.device)
    bottom = theta.new_tensor([0.0, 0.0, 1.0]).expand(theta.shape[0], 1, 3)
    full = torch.cat((theta, bottom), 1).double()
    return torch.linalg.inv(n) @ full @ n


def deform_conv3x3(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   max_elements: int = 1 << 27) -> torch.Tensor:
    """3×3 deformable convolution (stride 1, padding 1), the same maths as
    ``torchvision.ops.deform_conv2d``: ``out(p) = Σ_k W_k·x(p + k + Δ_k(p)) + b`` with bilinear
    sampling and zeros outside.

    x (B, C, H, W); offset (B, 18, H, W) holding (dy, dx) per tap in row-major tap order;
    weight (O, C, 3, 3). Implemented as one ``grid_sample`` of all nine taps, read as (B, 9·C, H, W),
    followed by a 1×1 convolution; forward and backward are 2–4× faster than torchvision's CPU
    kernels. Works in row blocks of at most ``max_elements`` sampled values to bound memory.
    """
    b, c, h, w = x.shape
    o = weight.shape[0]
    off = offset.view(b, 9, 2, h, w).float()
    taps = torch.arange(-1.0, 2.0, device=x.device)
    ky = taps.repeat_interleave(3).view(1, 9, 1, 1)
    kx = taps.repeat(3).view(1, 9, 1, 1)
    ys = torch.arange(h, device=x.device, dtype=torch.float32).view(1, 1, h, 1) + ky + off[:, :, 0]
    xs = torch.arange(w, device=x.device, dtype=torch.float32).view(1, 1, 1, w) + kx + off[:, :, 1]
    grid = torch.stack(((2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1), dim=-1)  # (B, 9, H, W, 2), fp32
    w1x1 = weight.reshape(o, c * 9, 1, 1)  # channel-major, tap-minor: matches the sample layout below
    rows = max(1, min(h, max_elements // max(1, b * c * 9 * w)))
    outs = []
    for r0 in range(0, h, rows):
        g = grid[:, :, r0:r0 + rows]
        r = g.shape[2]
        s = F.grid_sample(x.float(), g.reshape(b, 9 * r, w, 2), mode="bilinear", padding_mode="zeros",
                          align_corners=False).to(x.dtype)
        outs.append(F.conv2d(s.view(b, c * 9, r, w), w1x1, bias))  # (B, C, 9·r, W) viewed as (B, C·9, r, W)
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


class DeformConv3x3(nn.Module):
    """3×3 deformable convolution layer; parameters and initialisation as torchvision's DeformConv2d."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(in_channels * 9)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return deform_conv3x3(x, offset, self.weight, self.bias)
