"""Dataset contract: a dataset lists pair ids per split and loads aligned SAR–optical pairs.

Datasets know their on-disk layout and splits, nothing else: the protocol deforms the pairs,
so every dataset gets the same deformation logic (``regbench.protocol``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np


class DatasetError(RuntimeError):
    """A dataset folder is missing, incomplete or malformed; the message says how to fix it."""


@dataclass
class DatasetConfig:
    """Options shared by every dataset; loaders subclass this for their own."""

    root: str | None = None


class PairDataset:
    """Base class of every dataset loader.

    Subclasses set ``name``, ``splits`` and ``Config``, and implement ``ids`` and ``load``.
    """

    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    Config: ClassVar[type[DatasetConfig]] = DatasetConfig

    def __init__(self, config: DatasetConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise DatasetError(f"dataset {self.name!r} has no split {split!r}; its splits are: {', '.join(self.splits)}")

    def ids(self, split: str) -> list[str]:
        """Sorted pair ids of ``split``."""
        raise NotImplementedError

    def load(self, split: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Aligned (SAR (H, W), optical (H, W, 3) or (H, W)) float32 images in [0, 1]."""
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """A string that changes whenever the data this loader yields would change."""
        return self.name


def data_root(config_root: str | None, dataset: str) -> Path:
    """Resolve a dataset's root: the config/``--root`` value, else ``$REGBENCH_DATA/<dataset>``."""
    if config_root:
        return Path(config_root).expanduser()
    env = os.environ.get("REGBENCH_DATA")
    if env:
        return Path(env).expanduser() / dataset
    raise DatasetError(
        f"no data root for dataset {dataset!r}: pass --root PATH (or --set root=PATH), "
        f"or set REGBENCH_DATA to a folder that contains {dataset}/"
    )


def read_image(path: Path, gray: bool) -> np.ndarray:
    """Read an 8/16-bit image as float32 in [0, 1]; (H, W) if ``gray`` else (H, W, 3) RGB."""
    if not path.is_file():
        raise DatasetError(f"image file missing: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"cannot decode image {path} (corrupt or not an image); re-download or remove it")
    scale = 65535.0 if img.dtype == np.uint16 else 255.0 if img.dtype == np.uint8 else 1.0
    img = img.astype(np.float32) / scale
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if gray:
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.shape[2] == 3 else img[..., 0]
        return np.ascontiguousarray(img)
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., ::-1])
