"""FGE, the Feature Gradient Enhancer (SOMA §2.2 of ``docs/soma.md``).

``y = FGE(x)`` keeps the shape (B, C, H, W) and runs five steps:

1. reconstruction  f = x + P₂(CRU(SRU(P₁(x))))              (SCConv, Li et al. CVPR 2023)
2. gradients       u = f + BN(W_f·concat_k ReLU(S_k * f))  (8 directional 3×3 convolutions)
3. attention       a = u ⊙ CA(u) ⊙ SA(u) + u                (channel and spatial)
4. context         m = DW₃ₓ₃(IN(W_m·concat_d D_d * a))      (dilations 1, 2, 3)
5. output          y = m + a
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SOBEL = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
ANGLES = tuple(22.5 * k for k in range(8))


def rotated_sobel(angle_deg: float) -> torch.Tensor:
    """(3, 3) Sobel x-kernel rotated by ``angle_deg`` with nearest-neighbour resampling on the 3×3
    grid (Python ``round``, as the released code): only five distinct kernels for eight angles."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    out = torch.zeros(3, 3)
    for i in range(3):
        for j in range(3):
            y, x = i - 1, j - 1
            xr, yr = round(c * x - s * y), round(s * x + c * y)  # source tap of target (x, y)
            out[i, j] = SOBEL[yr + 1][xr + 1]
    return out


class SRU(nn.Module):
    """Spatial reconstruction unit: gate the GroupNorm-ed features by σ(γ/Σγ·GN(x)) ≥ 0.5 into an
    informative and a less-informative part and cross-add their channel halves."""

    def __init__(self, channels: int, groups: int = 4, threshold: float = 0.5) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(groups, channels)
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = self.gn(x)
        gamma = self.gn.weight / self.gn.weight.sum()
        w = torch.sigmoid(gx * gamma.view(1, -1, 1, 1))
        info = w >= self.threshold
        x1, x2 = gx * info, gx * ~info
        a1, a2 = x1.chunk(2, dim=1)
        b1, b2 = x2.chunk(2, dim=1)
        return torch.cat((a1 + b2, a2 + b1), dim=1)


class CRU(nn.Module):
    """Channel reconstruction unit: split (α = 0.5), squeeze (ratio 2), group-wise + point-wise
    convolutions on the upper half, feature reuse on the lower, softmax-weighted fusion."""

    def __init__(self, channels: int, squeeze: int = 2, groups: int = 2) -> None:
        super().__init__()
        self.up = channels // 2
        low = channels - self.up
        up_s, low_s = self.up // squeeze, low // squeeze
        self.squeeze_up = nn.Conv2d(self.up, up_s, 1, bias=False)
        self.squeeze_low = nn.Conv2d(low, low_s, 1, bias=False)
        self.gwc = nn.Conv2d(up_s, channels, 3, padding=1, groups=groups)
        self.pwc_up = nn.Conv2d(up_s, channels, 1, bias=False)
        self.pwc_low = nn.Conv2d(low_s, channels - low_s, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up, low = torch.split(x, [self.up, x.shape[1] - self.up], dim=1)
        up, low = self.squeeze_up(up), self.squeeze_low(low)
        y = torch.cat((self.gwc(up) + self.pwc_up(up), low, self.pwc_low(low)), dim=1)
        y = torch.softmax(F.adaptive_avg_pool2d(y, 1), dim=1) * y
        y1, y2 = y.chunk(2, dim=1)
        return y1 + y2


class GradientFilter(nn.Module):
    """Eight 3×3 convolutions C→C/2 (no bias) + ReLU, concatenated, fused by 1×1 conv + BN.

    The eight branches are held as one convolution C→4C whose k-th block of C/2 output channels
    is branch k (the same maths as eight convolutions and a concat, in one kernel call).
    ``filters="sobel"`` initialises branch k with the Sobel kernel rotated by 22.5°·k, replicated
    over every (out, in) channel pair; ``"learnable"`` keeps PyTorch's random initialisation.
    Both stay trainable.
    """

    def __init__(self, channels: int, filters: str = "sobel") -> None:
        super().__init__()
        if filters not in ("sobel", "learnable"):
            raise ValueError(f"fge_filters must be 'sobel' or 'learnable', got {filters!r}")
        self.directional = nn.Conv2d(channels, len(ANGLES) * (channels // 2), 3, padding=1, bias=False)
        if filters == "sobel":
            with torch.no_grad():
                for block, angle in zip(self.branch_weights(), ANGLES):
                    block.copy_(rotated_sobel(angle).expand_as(block))
        self.fuse = nn.Conv2d(4 * channels, channels, 1)
        self.bn = nn.BatchNorm2d(channels)

    def branch_weights(self) -> tuple[torch.Tensor, ...]:
        """The eight branches' weights, each (C/2, C, 3, 3) (views of the fused convolution)."""
        return self.directional.weight.chunk(len(ANGLES), dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fuse(F.relu(self.directional(x))))


class FGE(nn.Module):
    """Feature Gradient Enhancer on (B, C, H, W) features (C a multiple of 8); same output shape."""

    def __init__(self, channels: int, filters: str = "sobel", attention: bool = True) -> None:
        super().__init__()
        c = channels
        self.pre = nn.Conv2d(c, c, 1)
        self.sru = SRU(c)
        self.cru = CRU(c)
        self.post = nn.Conv2d(c, c, 1)
        self.gradient = GradientFilter(c, filters)
        self.attention = attention
        if attention:
            self.channel_att = nn.Sequential(nn.Conv2d(c, c // 8, 1), nn.ReLU(inplace=True), nn.Conv2d(c // 8, c, 1))
            self.spatial_att = nn.Conv2d(c, 1, 1)
        self.dilated = nn.ModuleList(nn.Conv2d(c, c, 3, padding=d, dilation=d) for d in (1, 2, 3))
        self.context = nn.Conv2d(3 * c, c, 1)
        self.norm = nn.InstanceNorm2d(c, eps=1e-6, affine=False)
        self.gaussian = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        nn.init.normal_(self.gaussian.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x + self.post(self.cru(self.sru(self.pre(x))))
        u = f + self.gradient(f)
        if self.attention:
            ca = torch.sigmoid(self.channel_att(F.adaptive_avg_pool2d(u, 1)))
            a = u * ca * torch.sigmoid(self.spatial_att(u)) + u
        else:
            a = u
        m = self.gaussian(self.norm(self.context(torch.cat([d(a) for d in self.dilated], dim=1))))
        return m + a
