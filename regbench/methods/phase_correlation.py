"""``phase_correlation``: one global translation from the phase correlation of the two images.

Kuglin & Hines (1975), with Guizar-Sicairos et al.'s (2008) matrix-multiply DFT upsampling for
the sub-pixel peak (scikit-image's ``phase_cross_correlation``) and an optional Hann window.
The simplest real baseline: it models translation only and compares raw intensities, so the
SAR–optical modality gap and any rotation or scale show up as its errors.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.registration import phase_cross_correlation

from ..types import Pair, Prediction
from ..config import setting
from .base import Method, MethodConfig


@dataclass
class PhaseCorrelationConfig(MethodConfig):
    window: bool = True  # Hann window against the edge effects of zero-filled borders
    upsample_factor: int = setting(100, ge=1)  # sub-pixel precision 1/upsample_factor px


class PhaseCorrelation(Method):
    Config = PhaseCorrelationConfig

    def register(self, pair: Pair) -> Prediction:
        sar, opt = pair.sar.astype(np.float64), pair.opt_gray.astype(np.float64)
        if self.config.window:
            window = cv2.createHanningWindow(sar.shape[::-1], cv2.CV_64F)
            sar, opt = sar * window, opt * window
        if not (sar.std() > 0 and opt.std() > 0):
            return Prediction.failure("an image is uniform: phase correlation has no peak")
        (dy, dx), error, _ = phase_cross_correlation(opt, sar, upsample_factor=self.config.upsample_factor)
        # the SAR pixel p sits at p + (dx, dy) in the optical image
        matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
        return Prediction(matrix=matrix, info={"error": float(error)})
