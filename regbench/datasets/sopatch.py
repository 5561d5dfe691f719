"""SOPatch packaging (``sopatch_sen1_2``, ``sopatch_osdataset``, ``whu_sen_city``) and OSdataset's own
release (``osdataset``, ``osdataset_256``).

SOPatch (download: DH-net README) is what SOMA trains and tests on; 512×512 pairs sharing one file
name across ``opt/`` and ``sar/``::

    <root>/<source>/{train,val,test}/{sar,opt}/<name>.png      source: SEN1-2, OSdataset, WHU-SEN-City

OSdataset (Xiang et al., JSTARS 2020) as its authors release it, N restarting at 1 in each split;
official split 2011/238/424 pairs at 512, 8044/952/1696 at 256::

    <root>/512/{train,val,test}/sar<N>.png + opt<N>.png          (and 256/ for the 256×256 version)

The variants are cards (``datasets/*.yaml``) that set ``source`` or ``size``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import DatasetError
from ..config import setting
from .folder import FileConfig, FilePairDataset, Layout

SOPATCH_SOURCES = ("SEN1-2", "OSdataset", "WHU-SEN-City")


@dataclass
class SOPatchConfig(FileConfig):
    #: sub-folder of the SOPatch root: SEN1-2, OSdataset or WHU-SEN-City
    source: str = setting("SEN1-2", choices=("SEN1-2", "OSdataset", "WHU-SEN-City"))
    size: int | None = setting(512, ge=1)


class SOPatch(FilePairDataset):
    """One source of the SOPatch packaging; pair id = file name without ``.png``."""

    name = "sopatch_sen1_2"
    Config = SOPatchConfig
    root_aliases: ClassVar[tuple[str, ...]] = ("SOPatch", "sopatch")
    split_rule = "SOPatch's own {train,val,test} folders"
    about = "SOPatch: download link (Baidu pan) in the README of github.com/Bend1031/DH-net; no licence stated."

    def layout(self) -> Layout:
        source = self.config.source
        if source not in SOPATCH_SOURCES:
            raise DatasetError(f"SOPatch source {source!r} unknown; use one of {', '.join(SOPATCH_SOURCES)}")
        return Layout(f"{source}/{{split}}/sar/{{name}}.png", f"{source}/{{split}}/opt/{{name}}.png")


@dataclass
class OSConfig(FileConfig):
    #: 512 (2,673 pairs) or 256 (10,692 pairs): also the sub-folder read
    size: int | None = setting(512, ge=1)


class OSDataset(FilePairDataset):
    """OSdataset as released by its authors; pair id = N of ``sar<N>.png``."""

    name = "osdataset"
    Config = OSConfig
    root_aliases: ClassVar[tuple[str, ...]] = ("OSdataset",)
    split_rule = "official split of Xiang et al. 2020 (folders train/val/test; N restarts at 1 per split)"
    about = "OSdataset: https://github.com/xym2009/OSdataset (Baidu pan, code vriw); licence CC BY-NC."

    @property
    def manifest_name(self) -> str:
        """The 512 and 256 releases have different pair lists, whatever the variant is called."""
        return "osdataset" if self.config.size == 512 else f"osdataset_{self.config.size}"

    def layout(self) -> Layout:
        if self.config.size not in (256, 512):
            raise DatasetError(f"osdataset size must be 256 or 512, got {self.config.size}")
        size = self.config.size
        return Layout(f"{size}/{{split}}/sar{{n}}.png", f"{size}/{{split}}/opt{{n}}.png", "{n}", (("n", r"\d+"),))
