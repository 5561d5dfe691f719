"""Method contract: a typed default config, ``setup(device)`` and ``register(pair) -> Prediction``.

A method sees a :class:`~regbench.types.Pair` (ground truth removed) and returns a
:class:`~regbench.types.Prediction`. It never reads dataset files, logs or times itself.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import torch

from ..config import validate
from ..errors import WeightsMissingError
from ..types import Pair, Prediction


@dataclass
class MethodConfig:
    """Base of every method config (methods subclass it with their own fields)."""


class Method:
    """Base class of every registration method."""

    Config: ClassVar[type] = MethodConfig
    #: whether ``regbench train`` can train it
    trainable: ClassVar[bool] = False

    def __init__(self, config: MethodConfig | None = None) -> None:
        self.config = validate(config if config is not None else self.Config())
        self.device = torch.device("cpu")

    def setup(self, device: torch.device) -> None:
        """Load weights and move to ``device``; raise :class:`WeightsMissingError` if absent."""
        self.device = device

    def register(self, pair: Pair) -> Prediction:
        raise NotImplementedError

    @property
    def weights_checksum(self) -> str | None:
        """sha256 of the weights in use, if any. Part of the prediction cache key, so it must be
        known *before* ``setup`` (hash the configured file: :func:`file_sha256`)."""
        return None


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes (``None`` if it does not exist), cached per path, size and mtime."""
    p = Path(path).expanduser()
    if not p.is_file():
        return None
    st = p.stat()
    return _sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TrainableMethod(Method):
    """A learned method that ``regbench train`` can train.

    The trainer owns the loop (data, optimiser, AMP, checkpoints, logging); the method owns the
    network, its loss and its parameter groups. After ``setup(device)`` the network is on
    ``device``; ``setup`` of a trainable method must not require trained weights when
    ``for_training=True`` (pretrained backbones it needs are still required).
    """

    trainable: ClassVar[bool] = True

    def setup(self, device: torch.device, for_training: bool = False) -> None:
        raise NotImplementedError

    @property
    def model(self) -> torch.nn.Module:
        """The trainable network (its ``state_dict`` is what checkpoints hold)."""
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """Optimiser parameter groups, each a dict with ``params`` and ``lr``."""
        raise NotImplementedError

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch and scalar logs.

        ``batch`` holds ``sar`` (B, 1, H, W), ``opt`` (B, 3, H, W) float in [0, 1] and
        ``gt_flow`` (B, H, W, 2) in pixels on the SAR grid, all on the method's device.
        """
        raise NotImplementedError

    def save_weights(self, path: str | Path) -> None:
        """Write the file that evaluation loads with ``--set weights=PATH``, atomically.

        Default: ``{"config": …, "state_dict": …}``; methods with a checkpoint format override it.
        """
        from ..config import to_dict
        from ..store import atomic_write

        payload = {"config": to_dict(self.config), "state_dict": self.model.state_dict()}
        atomic_write(path, lambda f: torch.save(payload, f))
