"""``qxs_saropt``: QXS-SAROPT (Huang et al., arXiv 2103.08259), 20,000 pairs of 256×256.

Layout (as packaged by the authors)::

    <root>/sar_256_oc_0.2/<id>.png   <root>/opt_256_oc_0.2/<id>.png

There is no official split. Each id goes to train/val/test by a salted sha256 of the id
(:func:`~.manifest.hashed_split`), 80/10/10; the tiles come from three cities and may overlap,
so the split is per pair, not per region (no location data is distributed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config import setting
from .folder import FileConfig, FilePairDataset, Layout
from .manifest import hashed_split

SALT = "regbench-qxs_saropt-v1"
FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


@dataclass
class QXSConfig(FileConfig):
    size: int | None = setting(256, ge=1)


class QXSSarOpt(FilePairDataset):
    name = "qxs_saropt"
    Config = QXSConfig
    root_aliases: ClassVar[tuple[str, ...]] = ("QXSLAB_SAROPT", "QXS-SAROPT")
    split_rule = (
        f"per pair: u = sha256('{SALT}/<id>')[:8] little-endian / 2^64; train if u < 0.8, val if u < 0.9, else test"
    )
    about = "QXS-SAROPT: request form linked from github.com/yaoxu008/QXS-SAROPT; cite the paper (no licence stated)."

    def layout(self) -> Layout:
        return Layout("sar_256_oc_0.2/{name}.png", "opt_256_oc_0.2/{name}.png")

    def assign_split(self, pair_id: str) -> str:
        return hashed_split(pair_id, SALT, FRACTIONS)
