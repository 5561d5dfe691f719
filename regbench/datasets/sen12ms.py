"""``sen12ms``: SEN12MS (Schmitt et al. 2019) GeoTIFF triplets, the S1/S2 pairs with the published split.

Layout (the per-modality tarballs of mediaTUM record 1474000, unpacked side by side)::

    <root>/ROIs1158_spring_s1/s1_<scene>/ROIs1158_spring_s1_<scene>_p<patch>.tif   2 bands VV, VH (dB, float32)
    <root>/ROIs1158_spring_s2/s2_<scene>/ROIs1158_spring_s2_<scene>_p<patch>.tif   13 bands B1…B12 (uint16)
    … ROIs1868_summer, ROIs1970_fall, ROIs2017_winter
    <root>/train_list.txt, <root>/test_list.txt     the published split lists (SEN12MS repository, splits/)

OpenCV cannot decode these files (2-band float32, 13-band uint16), so they are read with
``tifffile`` (a scikit-image dependency). SAR = the VV band, dB mapped linearly from ``db_range``
to [0, 1]; optical = B4, B3, B2 digital numbers divided by ``s2_max``, clipped to [0, 1].
Pair id: ``<season>_<scene>_p<patch>``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import DatasetError
from ..config import setting
from .folder import FileConfig, FilePairDataset, Layout, read_tiff

_KEY = re.compile(r"(ROIs\d+_[a-z]+)_(?:s1|s2|lc)_(\d+)_p(\d+)")
RGB_BANDS = (3, 2, 1)  # B4, B3, B2 among B1, B2, B3, B4, …


@dataclass
class Sen12MSConfig(FileConfig):
    size: int | None = setting(256, ge=1)
    #: S1 band used as the SAR image (0 = VV, 1 = VH)
    sar_band: int = setting(0, choices=(0, 1))
    #: dB mapped to 0 and 1
    db_range: tuple[float, float] = (-25.0, 0.0)
    #: S2 digital number mapped to 1 (reflectance × 10000)
    s2_max: float = 3000.0


class Sen12MS(FilePairDataset):
    name = "sen12ms"
    Config = Sen12MSConfig
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    root_aliases: ClassVar[tuple[str, ...]] = ("SEN12MS",)
    split_rule = "the published SEN12MS split lists train_list.txt / test_list.txt (test = hold-out scenes)"
    about = ("SEN12MS: https://mediatum.ub.tum.de/1474000 (CC BY 4.0); split lists train_list.txt and test_list.txt "
             "from https://github.com/schmitt-muc/SEN12MS (folder splits/), placed in the data root.")

    def __init__(self, config: Sen12MSConfig | None = None) -> None:
        super().__init__(config)
        self._lists: dict[str, str] | None = None

    def layout(self) -> Layout:
        return Layout(
            "{season}_s1/s1_{scene}/{season}_s1_{scene}_p{patch}.tif",
            "{season}_s2/s2_{scene}/{season}_s2_{scene}_p{patch}.tif",
            "{season}_{scene}_p{patch}",
            (("season", r"ROIs\d+_[a-z]+"), ("scene", r"\d+"), ("patch", r"\d+")),
        )

    def assign_split(self, pair_id: str) -> str:
        if self._lists is None:
            self._lists = {}
            for split in self.splits:
                path = self.root / f"{split}_list.txt"
                if not path.is_file():
                    raise DatasetError(f"SEN12MS split list {path} is missing. {self.about}")
                for m in _KEY.finditer(path.read_text()):
                    self._lists[f"{m.group(1)}_{m.group(2)}_p{m.group(3)}"] = split
        return self._lists.get(pair_id, "unlisted")

    def load(self, split: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        sar_path, opt_path = self.paths(split, pair_id)
        s1, s2 = read_tiff(sar_path), read_tiff(opt_path)
        if s1.shape[2] <= c.sar_band or s2.shape[2] < 13:
            raise DatasetError(f"{sar_path} / {opt_path}: expected ≥{c.sar_band + 1} S1 bands and 13 S2 bands, "
                               f"found {s1.shape[2]} and {s2.shape[2]}")
        self.check_shapes(sar_path, s1.shape[:2], opt_path, s2.shape[:2])
        lo, hi = c.db_range
        sar = np.clip(np.nan_to_num((s1[..., c.sar_band].astype(np.float32) - lo) / (hi - lo)), 0, 1)  # NaN (no data) → 0
        opt = np.clip(s2[..., list(RGB_BANDS)].astype(np.float32) / c.s2_max, 0, 1)
        return np.ascontiguousarray(sar), np.ascontiguousarray(opt)
