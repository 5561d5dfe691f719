"""``sen1_2``: SEN1-2 (Schmitt, Hughes & Zhu 2018) as distributed, split by scene.

Layout (mediaTUM record 1436631), scene and patch numbers with gaps (globbed, never counted)::

    <root>/ROIs1158_spring/s1_<scene>/ROIs1158_spring_s1_<scene>_p<patch>.png   (SAR, grey)
    <root>/ROIs1158_spring/s2_<scene>/ROIs1158_spring_s2_<scene>_p<patch>.png   (optical, RGB)
    … ROIs1868_summer, ROIs1970_fall, ROIs2017_winter

SEN1-2 has no official split. Patches of one scene overlap, so the split is by scene: each
``<season>/<scene>`` goes to train/val/test by a salted sha256 (:func:`~.manifest.hashed_split`),
80/10/10 of the scenes. Pair id: ``<season>_<scene>_p<patch>``, e.g. ``ROIs1158_spring_1_p30``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from ..errors import DatasetError
from ..config import setting
from .folder import FileConfig, FilePairDataset, Layout
from .manifest import hashed_split

SALT = "regbench-sen1_2-v1"
FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
_ID = re.compile(r"(ROIs\d+_[a-z]+)_(\d+)_p\d+\Z")


@dataclass
class Sen12Config(FileConfig):
    size: int | None = setting(256, ge=1)


class Sen1_2(FilePairDataset):
    name = "sen1_2"
    Config = Sen12Config
    root_aliases: ClassVar[tuple[str, ...]] = ("SEN1-2",)
    split_rule = (
        f"by scene: key '<season>/<scene>', u = sha256('{SALT}/<key>')[:8] little-endian / 2^64; "
        "train if u < 0.8, val if u < 0.9, else test"
    )
    about = "SEN1-2: https://mediatum.ub.tum.de/1436631 (rsync per the page's technical remarks)."

    def layout(self) -> Layout:
        return Layout(
            "{season}/s1_{scene}/{season}_s1_{scene}_p{patch}.png",
            "{season}/s2_{scene}/{season}_s2_{scene}_p{patch}.png",
            "{season}_{scene}_p{patch}",
            (("season", r"ROIs\d+_[a-z]+"), ("scene", r"\d+"), ("patch", r"\d+")),
        )

    def assign_split(self, pair_id: str) -> str:
        m = _ID.match(pair_id)
        if m is None:
            raise DatasetError(f"{pair_id!r} is not a SEN1-2 pair id (<season>_<scene>_p<patch>)")
        return hashed_split(f"{m.group(1)}/{m.group(2)}", SALT, FRACTIONS)
