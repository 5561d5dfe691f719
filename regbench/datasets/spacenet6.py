"""``spacenet6``: SpaceNet 6 MSAW (Shermeyer et al. 2020), SAR-Intensity tiles with their PS-RGB tiles.

Layout (AWS tarball ``SN6_buildings_AOI_11_Rotterdam_train.tar.gz`` unpacked; the public test set
has no optical tiles and is not used)::

    <root>/train/AOI_11_Rotterdam/SAR-Intensity/SN6_Train_AOI_11_Rotterdam_SAR-Intensity_<t1>_<t2>_tile_<n>.tif
    <root>/train/AOI_11_Rotterdam/PS-RGB/SN6_Train_AOI_11_Rotterdam_PS-RGB_<t1>_<t2>_tile_<n>.tif

900×900 px at 0.5 m. SAR = one intensity band (``sar_band``: 0 HH, 1 HV, 2 VH, 3 VV) scaled per
image between its ``percentiles`` (no-data zeros excluded); optical = PS-RGB (8-bit: /255, else
per-image percentiles). No standard registration split: pairs are split by SAR strip (``<t1>_<t2>``,
one acquisition) with a salted sha256, 80/10/10, so overlapping tiles of a strip stay together.
Pair id: ``<t1>_<t2>_tile_<n>``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import DatasetError
from ..config import setting
from .folder import FileConfig, FilePairDataset, Layout, read_tiff
from .manifest import hashed_split

SALT = "regbench-spacenet6-v1"
FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
_ID = re.compile(r"(\d+_\d+)_tile_\d+\Z")
PREFIX = "train/AOI_11_Rotterdam/{product}/SN6_Train_AOI_11_Rotterdam_{product}_{t1}_{t2}_tile_{n}.tif"


@dataclass
class SpaceNet6Config(FileConfig):
    size: int | None = setting(900, ge=1)
    #: SAR-Intensity band: 0 HH, 1 HV, 2 VH, 3 VV
    sar_band: int = setting(0, choices=(0, 1, 2, 3))
    #: per-image percentiles mapped to 0 and 1 (SAR, and optical tiles that are not 8-bit)
    percentiles: tuple[float, float] = setting((2.0, 98.0), ge=0, le=100)


def _stretch(x: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Map the percentiles of the non-zero pixels of ``x`` to [0, 1]; zeros (no data) stay 0."""
    valid = x[x > 0]
    if valid.size == 0:
        return np.zeros_like(x, dtype=np.float32)
    lo, hi = np.percentile(valid, percentiles)
    out = np.clip((x.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.where(x > 0, out, 0).astype(np.float32)


class SpaceNet6(FilePairDataset):
    name = "spacenet6"
    Config = SpaceNet6Config
    root_aliases: ClassVar[tuple[str, ...]] = ("SN6_buildings", "SpaceNet6")
    split_rule = (
        f"by SAR strip: key '<t1>_<t2>', u = sha256('{SALT}/<key>')[:8] little-endian / 2^64; "
        "train if u < 0.8, val if u < 0.9, else test"
    )
    about = ("SpaceNet 6: s3://spacenet-dataset/spacenet/SN6_buildings/tarballs/SN6_buildings_AOI_11_Rotterdam_train.tar.gz "
             "(AWS open data, CC BY-SA 4.0).")

    def layout(self) -> Layout:
        return Layout(
            PREFIX.replace("{product}", "SAR-Intensity"),
            PREFIX.replace("{product}", "PS-RGB"),
            "{t1}_{t2}_tile_{n}",
            (("t1", r"\d+"), ("t2", r"\d+"), ("n", r"\d+")),
        )

    def assign_split(self, pair_id: str) -> str:
        m = _ID.match(pair_id)
        if m is None:
            raise DatasetError(f"{pair_id!r} is not a SpaceNet 6 pair id (<t1>_<t2>_tile_<n>)")
        return hashed_split(m.group(1), SALT, FRACTIONS)

    def load(self, split: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        sar_path, opt_path = self.paths(split, pair_id)
        sar_raw, opt_raw = read_tiff(sar_path), read_tiff(opt_path)
        if sar_raw.shape[2] <= c.sar_band or opt_raw.shape[2] < 3:
            raise DatasetError(f"{sar_path} / {opt_path}: expected ≥{c.sar_band + 1} SAR bands and 3 optical bands, "
                               f"found {sar_raw.shape[2]} and {opt_raw.shape[2]}")
        self.check_shapes(sar_path, sar_raw.shape[:2], opt_path, opt_raw.shape[:2])
        sar = _stretch(np.nan_to_num(sar_raw[..., c.sar_band]), c.percentiles)
        rgb = opt_raw[..., :3]
        opt = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else _stretch(rgb, c.percentiles)
        return sar, np.ascontiguousarray(opt)
