"""Dataset contract: a dataset lists pair ids per split and loads aligned SAR–optical pairs.

Datasets know their on-disk layout and splits, nothing else: the protocol deforms the pairs,
so every dataset gets the same deformation logic (``regbench.protocol``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import yaml

from ..config import validate
from ..errors import DatasetError


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
        self.config = validate(config if config is not None else self.Config())

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
        """A string that changes whenever the data this loader yields would change (with its config)."""
        return self.name

    def source(self, split: str, pair_id: str) -> str:
        """A cheap identity of the stored inputs of one pair (e.g. file sizes and times): a cached
        prediction is reused only for the same identity. Empty for generated data."""
        return ""


def user_config_path() -> Path:
    """``$REGBENCH_CONFIG``, else ``$XDG_CONFIG_HOME/regbench/config.yaml`` (default ``~/.config``)."""
    if os.environ.get("REGBENCH_CONFIG"):
        return Path(os.environ["REGBENCH_CONFIG"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "regbench" / "config.yaml"


def _user_roots() -> dict[str, Any]:
    path = user_config_path()
    if not path.is_file():
        return {}
    conf = yaml.safe_load(path.read_text()) or {}
    data = conf.get("data", {}) if isinstance(conf, dict) else None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: 'data' must be a mapping of dataset name to folder, e.g. data: {{sen1_2: /data/SEN1-2}}")
    return data


def resolve_root(config_root: str | None, names: Sequence[str]) -> Path:
    """A dataset's root folder, looked up in this order:

    1. ``config_root`` (``--root PATH`` / ``--data-set root=PATH`` / a card's ``config.root``);
    2. ``$REGBENCH_DATA/<name>`` for the first of ``names`` (dataset name, then folder aliases such
       as ``SOPatch``) that exists;
    3. ``data: {<name>: PATH}`` in the user config file (:func:`user_config_path`);
    4. ``$REGBENCH_DATA/<names[0]>`` when ``REGBENCH_DATA`` is set (its layout check then says
       what is missing), else an error listing these options.
    """
    if config_root:
        return Path(config_root).expanduser()
    env = os.environ.get("REGBENCH_DATA")
    base = Path(env).expanduser() if env else None
    if base is not None:
        for n in names:
            if (base / n).exists():
                return base / n
    roots = _user_roots()
    for n in names:
        if roots.get(n):
            return Path(str(roots[n])).expanduser()
    if base is not None:
        return base / names[0]
    raise DatasetError(
        f"no data root for dataset {names[0]!r}. Give one of: --root PATH (or --data-set root=PATH); "
        f"REGBENCH_DATA=<folder holding {' or '.join(n + '/' for n in names)}>; or in {user_config_path()}:\n"
        f"  data:\n    {names[0]}: /path/to/folder\n"
        f"See `regbench data info --dataset {names[0]}` for the expected layout and where to download it."
    )


def read_image(path: Path, gray: bool) -> np.ndarray:
    """Read an 8/16-bit image as float32 in [0, 1]; (H, W) if ``gray`` else (H, W, 3) RGB."""
    import cv2

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
