"""SOMA's training loss (``docs/soma.md`` §3); flows in full-resolution pixels except L_tf:

L = L_rb + 0.5·L_tf + 0.1·L_uni + 0.1·L_δ + 0.1·L_cert

* L_rb   Charbonnier √(d² + ε²) of the final flow, mean over (b, c, h, w), ε = 1e-6.
* L_tf   Σ_s RMSE(dense head_s, flow of Δθ_s) at s ∈ {8, 4}: affine/flow self-consistency, in
         pixels of the level's own grid (full-resolution pixels / s), as the released code
         measures it. An RMSE's gradient does not shrink with the error, so measuring it in
         full-resolution pixels would scale its pull by s: 8× and 4× stronger than released,
         enough to pin Δθ to the slowly learning auxiliary dense head (tf4's affine then never
         leaves the identity).
* L_uni  std over a 4×4 grid of patches of the patch-mean end-point error, batch mean.
* L_δ    Σ_s w_s·ℓ₁(residual_s↑, its target), w = 0.125, 0.25, 0.5, 1 for s = 8, 4, 2, 1. A flow
         residual's target is F_gt − F_before; an affine residual Δθ applies on the grid already
         warped by θ, so its target is the exact θ⁻¹(p + F_gt(p)) − p.
* L_cert MSE(σ(certainty), exp(−EPE)) with the target detached (the released code lets it push
         the flow towards *larger* errors where certainty is low).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .ops import apply_theta, invert, level_centres, theta_flow, upsample_flow

WEIGHTS = {"rb": 1.0, "tf": 0.5, "uni": 0.1, "delta": 0.1, "cert": 0.1}
LEVEL_WEIGHTS = {8: 0.125, 4: 0.25, 2: 0.5, 1: 1.0}


def charbonnier(diff: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return torch.sqrt(diff * diff + eps * eps).mean()


def uniformity(epe: torch.Tensor, grid: int = 4) -> torch.Tensor:
    """epe (B, H, W) → batch mean of the std of the grid×grid patch means."""
    patches = F.adaptive_avg_pool2d(epe[:, None], grid).flatten(1)
    return patches.std(dim=1).mean()


def soma_loss(out: dict, gt_flow: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """``out`` from :class:`~.glam.GLAM`; gt_flow (B, 2, H, W) full-resolution pixels →
    (total loss, {term: value})."""
    size = tuple(gt_flow.shape[-2:])
    flow = out["flow"]
    diff = flow - gt_flow
    epe = diff.norm(dim=1)
    terms = {"rb": charbonnier(diff), "uni": uniformity(epe)}
    delta_terms = []
    tf_terms = []
    if out["affine_levels"]:
        p = level_centres(*size, size, gt_flow).expand(gt_flow.shape[0], *size, 2)
        target_pts = p + gt_flow.permute(0, 2, 3, 1)
        for s, theta, delta, dense in out["affine_levels"]:
            h, w = dense.shape[-2:]
            tf_terms.append(torch.sqrt(((dense - theta_flow(delta, h, w, size)) ** 2).sum(1).mean() + 1e-12) / s)
            target = (apply_theta(invert(theta), target_pts, size) - p).permute(0, 3, 1, 2)
            delta_terms.append(LEVEL_WEIGHTS[s] * (theta_flow(delta, *size, size) - target).abs().mean())
    for s, before, residual in out["flow_levels"]:
        target = gt_flow - upsample_flow(before, *size)
        delta_terms.append(LEVEL_WEIGHTS[s] * (upsample_flow(residual, *size) - target).abs().mean())
    if tf_terms:
        terms["tf"] = sum(tf_terms)
    if delta_terms:
        terms["delta"] = sum(delta_terms)
    if out["logit"] is not None:
        terms["cert"] = F.mse_loss(torch.sigmoid(out["logit"][:, 0]), torch.exp(-epe.detach()))
    total = sum(WEIGHTS[k] * v for k, v in terms.items())
    logs = {k: float(v.detach()) for k, v in terms.items()}
    logs["epe"] = float(epe.detach().mean())
    if out["theta"] is not None and out["flow_levels"]:  # how far the affine part alone gets
        logs["epe_affine"] = float((theta_flow(out["theta"].detach(), *size, size) - gt_flow).norm(dim=1).mean())
    return total, logs
