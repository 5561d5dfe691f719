"""``gfge_so``: GFGE_SO, SOMA's second main benchmark, read the way SOMA's loader reads it.

Public source unknown (see ``ABOUT``). SOMA's ``datasets/dataloader.py`` pairs ``sar<N>.png`` with
``opt<N>.png`` in ``<root>/GFGE/<split>/{sar,opt}/``; it also accepts files named identically in
both folders (``naming: same_name``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import DatasetError
from ..config import setting
from .folder import FileConfig, FilePairDataset, Layout

ABOUT = (
    "About GFGE_SO — known: SOMA (arXiv 2511.13168) reports its main results on it, and SOMA's loader reads "
    "<root>/GFGE/{train,val,test}/{sar,opt}/sar<N>.png / opt<N>.png; a third-party loader lists "
    "'GFGE_SOdataset' apart from OSdataset. Unknown: its origin paper, public download, licence, size, "
    "resolution and image size (the name suggests GaoFen-3 SAR + Google Earth optical — not confirmed). "
    "Ask the SOMA authors (github.com/traslauc/SOMA) for the data, then point regbench at the folder "
    "that contains GFGE/ (--root PATH, REGBENCH_DATA, or data: {gfge_so: PATH} in the user config)."
)


@dataclass
class GFGEConfig(FileConfig):
    #: folder under the root that holds {train,val,test}/ (SOMA: GFGE)
    folder: str = "GFGE"
    #: "numbered": sar<N>.png ↔ opt<N>.png; "same_name": <name>.png in both sar/ and opt/
    naming: str = setting("numbered", choices=("numbered", "same_name"))


class GFGESO(FilePairDataset):
    name = "gfge_so"
    Config = GFGEConfig
    root_aliases: ClassVar[tuple[str, ...]] = ("GFGE_SO", "SOPatch", "sopatch")
    split_rule = "the {train,val,test} folders of the GFGE release (origin unknown)"
    about = ABOUT

    def layout(self) -> Layout:
        base = f"{self.config.folder}/{{split}}"
        if self.config.naming == "numbered":
            return Layout(f"{base}/sar/sar{{n}}.png", f"{base}/opt/opt{{n}}.png", "{n}", (("n", r"\d+"),))
        if self.config.naming == "same_name":
            return Layout(f"{base}/sar/{{name}}.png", f"{base}/opt/{{name}}.png")
        raise DatasetError(f"gfge_so naming must be 'numbered' or 'same_name', got {self.config.naming!r}")
