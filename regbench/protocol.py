"""The fixed test protocol: one deterministic deformation per (dataset, split, pair id, protocol).

A deformation is a similarity about the image centre. It is drawn from a seed derived by hashing
``(protocol name, version, dataset, split, pair id)``, so every process and every machine draws
the same one; it is written to a manifest once and read back at evaluation time, never re-drawn
(``regbench.store.load_or_create_manifest``).
The SAR image is warped by it; the ground truth maps deformed-SAR pixels to optical pixels.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from . import geometry
from .errors import UnknownNameError
from .types import Pair


@dataclass(frozen=True)
class Protocol:
    """Ranges of the random similarity applied to the SAR image (uniform draws)."""

    name: str
    version: int
    max_rotation_deg: float
    scale_range: tuple[float, float]
    max_translation_px: float
    description: str

    @property
    def tag(self) -> str:
        return f"{self.name}-v{self.version}"

    def params(self) -> dict[str, float]:
        """The ranges as flat numbers (recorded with every run)."""
        return {"max_rotation_deg": self.max_rotation_deg, "scale_min": self.scale_range[0],
                "scale_max": self.scale_range[1], "max_translation_px": self.max_translation_px}

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """Draw one deformation's parameters: rotation (deg), scale, tx, ty (px)."""
        return {
            "rotation_deg": float(rng.uniform(-self.max_rotation_deg, self.max_rotation_deg)),
            "scale": float(rng.uniform(*self.scale_range)),
            "tx": float(rng.uniform(-self.max_translation_px, self.max_translation_px)),
            "ty": float(rng.uniform(-self.max_translation_px, self.max_translation_px)),
        }


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("main", 1, 5.0, (0.8, 1.2), 32.0, "SOMA main tables: rotation ±5°, scale 0.8–1.2, translation ≤ 32 px"),
        Protocol("relaxed", 1, 20.0, (1.0, 1.0), 50.0, "SOMA ablations and released code: rotation ±20°, scale 1, translation ≤ 50 px"),
        Protocol("none", 1, 0.0, (1.0, 1.0), 0.0, "no deformation: a sanity check (identity must score CMR@1 = 1)"),
    )
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UnknownNameError(f"unknown protocol {name!r}; known protocols: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def pair_seed(*parts: str) -> int:
    """A 64-bit seed from strings, stable across processes, machines and Python versions."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def draw_deformation(protocol: Protocol, dataset: str, split: str, pair_id: str) -> dict[str, float]:
    """The deformation parameters of one pair (deterministic)."""
    rng = np.random.default_rng(pair_seed(protocol.name, str(protocol.version), dataset, split, pair_id))
    return protocol.draw(rng)


def deformation_matrix(params: dict[str, float], height: int, width: int) -> np.ndarray:
    """The 3×3 map M from original (optical-aligned) pixels to deformed-SAR pixels."""
    return geometry.centre_transform(params["rotation_deg"], params["scale"], params["tx"], params["ty"], height, width)


def deform(sar: np.ndarray, params: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Warp the SAR image by a deformation.

    Returns:
        (deformed SAR (H, W), ground-truth matrix (3, 3) mapping deformed-SAR → optical pixels).
    """
    h, w = sar.shape[:2]
    gt = np.linalg.inv(deformation_matrix(params, h, w))
    return geometry.warp_matrix(sar, gt), gt


def deformed_pair(dataset, split: str, pair_id: str, params: dict[str, float], meta: dict) -> Pair:
    """Load one pair of ``dataset`` (a ``PairDataset``) and deform its SAR image by ``params``;
    the pair carries its ground truth. The one place where a test or training pair is made."""
    sar, opt = dataset.load(split, pair_id)
    moved, gt = deform(sar, params)
    return Pair(moved, opt, gt, meta)
