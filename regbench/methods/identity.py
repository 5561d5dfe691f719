"""``identity``: predicts no motion — the floor every table shows."""
from __future__ import annotations

import numpy as np

from ..types import Pair, Prediction
from .base import Method


class Identity(Method):
    def register(self, pair: Pair) -> Prediction:
        return Prediction(matrix=np.eye(3))
