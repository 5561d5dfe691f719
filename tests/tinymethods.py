"""Misbehaving methods for harness tests."""
from __future__ import annotations

import numpy as np

from regbench.methods.base import Method
from regbench.types import Pair, Prediction
from tinydata import identify


class Crashy(Method):
    """Raises on odd pairs, returns NaN on pair 02, identity elsewhere."""

    def register(self, pair: Pair) -> Prediction:
        assert pair.gt_matrix is None, "methods must not see the ground truth"
        assert set(pair.meta) == {"handle"}, "methods must not see dataset, split, protocol or pair id"
        k = int(identify(pair.opt).split("-")[1])
        if k % 2:
            raise RuntimeError("boom")
        if k == 2:
            return Prediction(flow=np.full((*pair.shape, 2), np.nan, np.float32))
        return Prediction(matrix=np.eye(3))


class Interrupting(Method):
    """Simulates Ctrl-C on the fourth pair it sees (after the warm-up call)."""

    calls = 0

    def register(self, pair: Pair) -> Prediction:
        type(self).calls += 1
        if type(self).calls == 5:
            raise KeyboardInterrupt
        return Prediction(matrix=np.eye(3))
