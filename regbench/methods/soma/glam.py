"""GLAM, the Global-Local Affine-Flow Matcher (SOMA §2.3 of ``docs/soma.md``), coarse to fine:

| level | grid | what                                                                         |
|-------|------|------------------------------------------------------------------------------|
| 16    | 1/16 | global affine θ₀ regressed from DINOv2 (or layer3) + layer4 descriptors      |
| 8, 4  | 1/8, 1/4 | affine refinement θ ← θ̄·Δ̄ (deformable convs), auxiliary dense heads   |
| 2     | 1/2  | residual flow from the affine's flow, with a certainty logit                 |
| 1     | 1/1  | residual flow on the raw images; final flow and certainty                     |

Modes: ``full``; ``affine_only`` (stops after the 1/4 affine, whose flow is the output);
``flow_only`` (no affine: the 1/8 and 1/4 matchers' dense heads refine a flow that starts at zero).
Every flow is (B, 2, h, w) in full-resolution input pixels (see ``ops``); every affine head starts
at the identity and every residual head at zero.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops import DeformConv3x3, compose, theta_flow, upsample_flow, warp

MODES = ("full", "affine_only", "flow_only")


def affine_head(in_features: int) -> nn.Linear:
    """Linear → 6 numbers read as a (2, 3) affine, initialised to output the identity."""
    head = nn.Linear(in_features, 6)
    nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
    return head


LEVELS = (16, 8, 4, 2, 1)


def level_widths(width: int | tuple[int, ...]) -> dict[int, int]:
    """Hidden width per GLAM level {16, 8, 4, 2, 1}: one int for all (128 as released) or five,
    coarse to fine (the coarse levels cost little, the 1/2 and full-resolution ones most)."""
    widths = (width,) * len(LEVELS) if isinstance(width, int) else tuple(width)
    if len(widths) != len(LEVELS) or any(not isinstance(v, int) or v < 2 or v % 2 for v in widths):
        raise ValueError(f"glam_width must be an even int or five even ints (levels 1/16 … 1/1), got {width!r}")
    return dict(zip(LEVELS, widths))


def head_width(width: int) -> int:
    """Hidden channels of the dense heads: 32 at the released width 128, scaled with narrower GLAMs."""
    return max(8, width // 4)


def zero_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3×3 conv initialised to output zeros (residual heads)."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ChannelReducer(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DeformableBlock(nn.Module):
    """3×3 offset predictor (18 channels, zero-initialised: starts as a plain conv) + 3×3 deformable conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.offset = zero_conv(channels, 18)
        self.conv = DeformConv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.offset(x))


class RegressEncoder(nn.Sequential):
    """in → width → width → width/2 channels, each stage a 3×3 conv and a deformable block."""

    def __init__(self, in_channels: int, width: int) -> None:
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        super().__init__(
            nn.Conv2d(in_channels, width, 3, padding=1), act(), DeformableBlock(width), act(),
            nn.Conv2d(width, width, 3, padding=1), act(), DeformableBlock(width), act(),
            nn.Conv2d(width, width // 2, 3, padding=1), DeformableBlock(width // 2),
        )


class CoarseMatcher(nn.Module):
    """(B, C, h, w) concatenated descriptors → θ₀ (B, 2, 3): two 3×3 convs, GAP, linear."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width // 2, 3, padding=1), nn.ReLU(inplace=True))
        self.head = affine_head(width // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)).view(-1, 2, 3).float()


class TFMatcher(nn.Module):
    """Transform+flow matcher at stride s: from (SAR, warped optical) features, an affine
    residual Δθ (B, 2, 3) and a dense residual flow (B, 2, h, w) in full-resolution pixels."""

    def __init__(self, channels: int, width: int, stride: int, with_affine: bool) -> None:
        super().__init__()
        self.stride = stride
        self.encoder = RegressEncoder(2 * channels, width)
        self.affine = affine_head(width // 2) if with_affine else None
        hidden = head_width(width)
        self.dense = nn.Sequential(nn.Conv2d(width // 2, hidden, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                   zero_conv(hidden, 2))

    def forward(self, f_sar: torch.Tensor, f_opt: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        z = self.encoder(torch.cat((f_sar, f_opt), dim=1))
        delta = None if self.affine is None else self.affine(F.adaptive_avg_pool2d(z, 1).flatten(1)).view(-1, 2, 3).float()
        return delta, self.dense(z).float() * self.stride  # head works in level pixels


class RefineMatcher(nn.Module):
    """Residual flow refinement at stride s: (SAR, warped optical, displacement embedding[, prior
    certainty logit]) → residual flow (B, 2, h, w) in full-resolution pixels and a certainty logit."""

    def __init__(self, channels: int, width: int, stride: int, with_logit: bool) -> None:
        super().__init__()
        self.stride = stride
        self.embed = nn.Conv2d(2, 16, 1)
        self.encoder = RegressEncoder(2 * channels + 16 + int(with_logit), width)
        hidden = head_width(width)
        self.head = nn.Sequential(nn.Conv2d(width // 2, hidden, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  zero_conv(hidden, 3))

    def forward(self, f_sar: torch.Tensor, f_opt: torch.Tensor, flow: torch.Tensor,
                logit: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [f_sar, f_opt, self.embed((flow / self.stride).to(f_sar.dtype))]  # embedding sees level pixels
        if logit is not None:
            parts.append(logit.to(f_sar.dtype))
        out = self.head(self.encoder(torch.cat(parts, dim=1))).float()
        return out[:, :2] * self.stride, out[:, 2:]


class GLAM(nn.Module):
    """The matcher. ``channels`` maps stride → feature channels of one modality's pyramid
    (1, 2, 4, 8, and 16, 32 unless ``mode == "flow_only"``)."""

    def __init__(self, channels: dict[int, int], mode: str = "full", width: int | tuple[int, ...] = 128,
                 reducer: int = 512) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"glam must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        w = level_widths(width)
        affine = mode != "flow_only"
        if affine:
            self.reduce16 = nn.ModuleList(ChannelReducer(channels[16], reducer) for _ in range(2))
            self.reduce32 = nn.ModuleList(ChannelReducer(channels[32], reducer) for _ in range(2))
            self.coarse = CoarseMatcher(4 * reducer, w[16])
        self.tf8 = TFMatcher(channels[8], w[8], 8, affine)
        self.tf4 = TFMatcher(channels[4], w[4], 4, affine)
        if mode != "affine_only":
            self.refine2 = RefineMatcher(channels[2], w[2], 2, with_logit=False)
            self.refine1 = RefineMatcher(channels[1], w[1], 1, with_logit=True)

    def _descriptor(self, f: dict[int, torch.Tensor], i: int) -> torch.Tensor:
        d16 = self.reduce16[i](f[16])
        d32 = F.interpolate(self.reduce32[i](f[32]), size=d16.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat((d16, d32), dim=1)

    def forward(self, fs: dict[int, torch.Tensor], fo: dict[int, torch.Tensor]) -> dict:
        """Pyramids {stride: (B, C, H/s, W/s)} of SAR and optical → outputs (flows (B, 2, ·, ·) in
        full-resolution pixels):

        ``flow`` (B, 2, H, W) final; ``logit`` (B, 1, H, W) certainty or None; ``theta`` (B, 2, 3)
        final affine or None; ``affine_levels`` [(stride, θ_before, Δθ, dense)] and
        ``flow_levels`` [(stride, flow_before, residual)] for the losses.
        """
        size = tuple(fs[1].shape[-2:])
        out: dict = {"theta": None, "logit": None, "affine_levels": [], "flow_levels": []}
        if self.mode == "flow_only":
            h8, w8 = fs[8].shape[-2:]
            flow = fs[8].new_zeros(fs[8].shape[0], 2, h8, w8, dtype=torch.float32)
            for tf, s in ((self.tf8, 8), (self.tf4, 4)):
                flow = upsample_flow(flow, *fs[s].shape[-2:])
                _, residual = tf(fs[s], warp(fo[s], flow, size))
                out["flow_levels"].append((s, flow, residual))
                flow = flow + residual
        else:
            theta = self.coarse(torch.cat((self._descriptor(fs, 0), self._descriptor(fo, 1)), dim=1))
            for tf, s in ((self.tf8, 8), (self.tf4, 4)):
                h, w = fs[s].shape[-2:]
                delta, dense = tf(fs[s], warp(fo[s], theta_flow(theta, h, w, size), size))
                out["affine_levels"].append((s, theta, delta, dense))
                theta = compose(theta, delta)
            out["theta"] = theta
            if self.mode == "affine_only":
                out["flow"] = theta_flow(theta, *size, size)
                return out
            flow = theta_flow(theta, *fs[2].shape[-2:], size)
        flow = upsample_flow(flow, *fs[2].shape[-2:])
        residual, logit = self.refine2(fs[2], warp(fo[2], flow, size), flow)
        out["flow_levels"].append((2, flow, residual))
        flow = upsample_flow(flow + residual, *size)
        logit = F.interpolate(logit, size=size, mode="bilinear", align_corners=False)
        residual, logit1 = self.refine1(fs[1], warp(fo[1], flow, size), flow, logit)
        out["flow_levels"].append((1, flow, residual))
        out["flow"] = flow + residual
        out["logit"] = logit + logit1
        return out
