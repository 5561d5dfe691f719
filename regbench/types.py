"""The two objects every method and dataset exchanges: :class:`Pair` and :class:`Prediction`.

Conventions (see ``docs/conventions.md``): pixel coordinates x right, y down, pixel centres at
integers. The moving image is the (deformed) SAR image, the fixed image is the optical image.
A flow ``F`` (H, W, 2) in pixels lives on the SAR grid: ``p + F(p)`` is the optical location.
A matrix ``A`` (3, 3) maps SAR pixel coordinates to optical pixel coordinates.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import geometry


@dataclass(frozen=True)
class Pair:
    """One SAR–optical test pair.

    Attributes:
        sar: (H, W) float32 in [0, 1], the moving image (already deformed by the protocol).
        opt: (H, W, 3) or (H, W) float32 in [0, 1], the fixed image.
        gt_matrix: (3, 3) SAR→optical pixel transform, or ``None`` when hidden from a method.
        meta: dataset, split, pair_id, protocol and anything a dataset adds; a method sees only
            ``{"handle": …}`` (:meth:`for_method`).
    """

    sar: np.ndarray
    opt: np.ndarray
    gt_matrix: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sar.ndim != 2:
            raise ValueError(f"Pair {self.pair_id!r}: SAR image must be (H, W), got {self.sar.shape}")
        if self.opt.ndim not in (2, 3) or (self.opt.ndim == 3 and self.opt.shape[2] not in (1, 3)):
            raise ValueError(f"Pair {self.pair_id!r}: optical image must be (H, W) or (H, W, 3), got {self.opt.shape}")
        if self.opt.shape[:2] != self.sar.shape:
            raise ValueError(
                f"Pair {self.pair_id!r}: SAR {self.sar.shape} and optical {self.opt.shape[:2]} sizes differ; "
                "resample one of them so both share one grid"
            )

    @property
    def pair_id(self) -> str:
        return str(self.meta.get("pair_id", "?"))

    @property
    def shape(self) -> tuple[int, int]:
        return self.sar.shape  # type: ignore[return-value]

    @property
    def opt_gray(self) -> np.ndarray:
        """(H, W) float32 luminance of the optical image."""
        return geometry.to_gray(self.opt)

    def gt_flow(self) -> np.ndarray:
        """(H, W, 2) ground-truth flow on the SAR grid."""
        if self.gt_matrix is None:
            raise ValueError(f"Pair {self.pair_id!r} carries no ground truth")
        return geometry.matrix_to_flow(self.gt_matrix, *self.shape)

    def for_method(self) -> "Pair":
        """What a method is given: the two images and an opaque handle (random, unique per call).

        No ground truth, and no dataset, split, protocol or pair id: those would let a method
        look its deformation up in the public manifests.
        """
        return Pair(self.sar, self.opt, None, {"handle": secrets.token_hex(8)})


@dataclass
class Prediction:
    """What a method returns for one pair: a dense flow and/or a 3×3 matrix.

    Attributes:
        flow: (H, W, 2) float32 flow on the SAR grid, pixels; takes precedence over ``matrix``.
        matrix: (3, 3) SAR→optical pixel transform.
        confidence: optional (H, W) float32 in [0, 1].
        matches: optional (N, 4) float correspondences ``x_sar, y_sar, x_opt, y_opt`` in pixels
            (control-point and sparse/semi-dense methods), scored by the match-level metrics.
        inliers: optional (N,) bool: the matches the method's robust estimator kept.
        failed: reason string when the method could not register the pair.
        info: small JSON-able extras (number of matches, iterations…).
    """

    flow: np.ndarray | None = None
    matrix: np.ndarray | None = None
    confidence: np.ndarray | None = None
    matches: np.ndarray | None = None
    inliers: np.ndarray | None = None
    failed: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(cls, reason: str, **info: Any) -> "Prediction":
        return cls(failed=reason, info=info)

    def validate(self, shape: tuple[int, int]) -> "Prediction":
        """This prediction with arrays in their documented dtypes if it is usable on a grid of
        ``shape``, else a failed prediction saying why (every array shape-checked; a matrix whose
        flow would not be finite on that grid fails)."""
        if self.failed:
            return self
        if self.flow is None and self.matrix is None:
            return Prediction.failure("method returned neither a flow nor a matrix")
        out = replace(self)
        if self.flow is not None:
            out.flow = np.asarray(self.flow, dtype=np.float32)
            if out.flow.shape != (*shape, 2):
                return Prediction.failure(f"flow has shape {out.flow.shape}, expected {(*shape, 2)}")
            if not np.isfinite(out.flow).all():
                return Prediction.failure("flow contains NaN or inf")
        if self.matrix is not None:
            out.matrix = np.asarray(self.matrix, dtype=np.float64)
            if out.matrix.shape != (3, 3):
                return Prediction.failure(f"matrix has shape {out.matrix.shape}, expected (3, 3)")
            if not np.isfinite(out.matrix).all():
                return Prediction.failure("matrix contains NaN or inf")
            if out.flow is None and (defect := geometry.matrix_defect(out.matrix, *shape)):
                return Prediction.failure(defect)
        if self.confidence is not None:
            out.confidence = np.asarray(self.confidence, dtype=np.float32)
            if out.confidence.shape != shape:
                return Prediction.failure(f"confidence has shape {out.confidence.shape}, expected {shape}")
        if self.matches is not None:
            out.matches = np.asarray(self.matches, dtype=np.float64)
            if out.matches.ndim != 2 or out.matches.shape[1] != 4:
                return Prediction.failure(f"matches have shape {out.matches.shape}, expected (N, 4)")
            if self.inliers is not None:
                out.inliers = np.asarray(self.inliers, dtype=bool)
                if out.inliers.shape != (len(out.matches),):
                    return Prediction.failure(f"inliers have shape {out.inliers.shape}, expected ({len(out.matches)},)")
        return out

    def to_flow(self, height: int, width: int) -> np.ndarray:
        """(H, W, 2) dense flow, from ``flow`` or derived from ``matrix``."""
        if self.failed:
            raise ValueError(f"prediction failed: {self.failed}")
        if self.flow is not None:
            return self.flow
        assert self.matrix is not None
        return geometry.matrix_to_flow(self.matrix, height, width)
