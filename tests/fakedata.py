"""Tiny fake copies of the real dataset layouts (and a bigger ``folder`` for loading benchmarks).

Each builder writes a few pairs with gaps in their numbering and returns a :class:`Fake` that says
which pairs are complete. With ``defects=True`` it also damages the tree the ways real downloads
break: one SAR file loses its optical partner, one optical PNG is corrupt, one SAR image has the
wrong size. Command line (benchmark data)::

    python tests/fakedata.py OUT --pairs 200 --size 512      # a ``folder`` dataset, split test
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


def texture(size: int, seed: int, channels: int = 1) -> np.ndarray:
    """(size, size[, channels]) uint8 smooth random texture."""
    rng = np.random.default_rng(seed)
    img = rng.random((size, size, channels), dtype=np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 2.0).reshape(size, size, channels)
    img = (img - img.min()) / (np.ptp(img) + 1e-6)
    out = (img * 255).astype(np.uint8)
    return out[..., 0] if channels == 1 else out


def write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")


@dataclass
class Fake:
    """A fake dataset tree: its root, the complete pairs (split → sorted ids) and the defects (relative paths)."""

    root: Path
    ids: dict[str, list[str]] = field(default_factory=dict)
    orphan: str | None = None  # SAR file whose optical partner was deleted
    orphan_missing: str | None = None  # the deleted partner
    orphan_id: str | None = None
    corrupt: str | None = None  # optical PNG overwritten with junk
    wrong_size: str | None = None  # SAR PNG written at size + 8


def _build(root: Path, entries: list[tuple[str, str, str, str]], size: int, defects: bool,
           sar_channels: int = 1, opt_channels: int = 3) -> Fake:
    """Write ``entries`` (split, id, sar rel, opt rel); damage entries 0, 1, 2 when ``defects``."""
    fake = Fake(root)
    for k, (split, pid, sar, opt) in enumerate(entries):
        write_png(root / sar, texture(size, 2 * k, sar_channels))
        write_png(root / opt, texture(size, 2 * k + 1, opt_channels))
        fake.ids.setdefault(split, []).append(pid)
    if defects:
        (split, pid, sar, opt) = entries[0]
        (root / opt).unlink()
        fake.orphan, fake.orphan_missing, fake.orphan_id = sar, opt, pid
        fake.ids[split].remove(pid)
        fake.corrupt = entries[1][3]
        (root / fake.corrupt).write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG stream")
        fake.wrong_size = entries[2][2]
        write_png(root / fake.wrong_size, texture(size + 8, 99, sar_channels))
    fake.ids = {s: sorted(v) for s, v in fake.ids.items()}
    return fake


def make_folder(root: Path, size: int = 32, defects: bool = False, pairs: int = 0) -> Fake:
    """``<root>/<split>/{sar,opt}/<name>.png``; ``pairs`` > 0 writes that many test pairs instead."""
    names = {"test": ["a01", "a02", "a05", "b10", "b11"], "train": ["0001", "0003"]}
    if pairs:
        names = {"test": [f"{i:05d}" for i in range(pairs)]}
    entries = [(s, n, f"{s}/sar/{n}.png", f"{s}/opt/{n}.png") for s, ns in names.items() for n in ns]
    return _build(root, entries, size, defects)


def make_sen1_2(root: Path, size: int = 32, defects: bool = False) -> Fake:
    """SEN1-2: ``ROIs<season>/s1_<scene>/ROIs<season>_s1_<scene>_p<patch>.png`` + ``s2_`` partners.

    Ids in ``Fake.ids["all"]``: the split comes from the dataset's rule.
    """
    scenes = {("ROIs1158_spring", 1): (1, 3, 30), ("ROIs1158_spring", 4): (2,), ("ROIs2017_winter", 0): (7, 11),
              ("ROIs2017_winter", 146): (5,), ("ROIs1970_fall", 25): (621, 622), ("ROIs1868_summer", 17): (4, 8),
              ("ROIs1868_summer", 11): (3, 40)}  # scene split by the rule: summer 17 → val, summer 11 → test
    entries = [
        ("all", f"{season}_{scene}_p{p}", f"{season}/s1_{scene}/{season}_s1_{scene}_p{p}.png",
         f"{season}/s2_{scene}/{season}_s2_{scene}_p{p}.png")
        for (season, scene), patches in scenes.items() for p in patches
    ]
    return _build(root, entries, size, defects)


def make_sopatch(root: Path, size: int = 32, defects: bool = False) -> Fake:
    """SOPatch: ``<source>/{train,val,test}/{sar,opt}/<name>.png``; SAR stored as 3 identical channels,
    OSdataset optical stored grey (both occur). Ids keyed ``"<source>/<split>"``."""
    names = {"SEN1-2": {"test": ["d30325", "d30959", "d31000"], "train": ["d30001"]},
             "WHU-SEN-City": {"test": ["d10008", "d10011"], "val": ["d10002"]},
             "OSdataset": {"test": ["d20001", "d20096"]}}
    entries = [(f"{src}/{s}", n, f"{src}/{s}/sar/{n}.png", f"{src}/{s}/opt/{n}.png")
               for src, splits in names.items() for s, ns in splits.items() for n in ns]
    fake = _build(root, entries, size, defects, sar_channels=3)
    for src, splits in names.items():  # grey optical for the OSdataset part
        if src == "OSdataset":
            for s, ns in splits.items():
                for k, n in enumerate(ns):
                    write_png(root / f"{src}/{s}/opt/{n}.png", texture(size, 50 + k, 1))
    return fake


def make_osdataset(root: Path, size: int = 256, defects: bool = False) -> Fake:
    """OSdataset release: ``<size>/{train,val,test}/sar<N>.png`` + ``opt<N>.png``, grey, N with gaps."""
    numbers = {"test": [1, 2, 5, 10, 424], "val": [1, 3], "train": [2011]}
    entries = [(s, str(n), f"{size}/{s}/sar{n}.png", f"{size}/{s}/opt{n}.png") for s, ns in numbers.items() for n in ns]
    return _build(root, entries, size, defects, opt_channels=1)


def make_gfge(root: Path, size: int = 32, defects: bool = False) -> Fake:
    """GFGE as SOMA reads it: ``GFGE/{train,val,test}/sar/sar<N>.png`` + ``opt/opt<N>.png``."""
    numbers = {"test": [3, 4, 12, 100], "train": [1]}
    entries = [(s, str(n), f"GFGE/{s}/sar/sar{n}.png", f"GFGE/{s}/opt/opt{n}.png") for s, ns in numbers.items() for n in ns]
    return _build(root, entries, size, defects)


def make_qxs(root: Path, size: int = 32, defects: bool = False) -> Fake:
    """QXS-SAROPT: ``sar_256_oc_0.2/<id>.png`` + ``opt_256_oc_0.2/<id>.png``; ids in ``Fake.ids["all"]``."""
    ids = [0, 7, 100, 7756, 19477, 19999, 12109, 2347, 11, 3]  # 11 → val, 3 and 19477 → test by the rule
    entries = [("all", str(i), f"sar_256_oc_0.2/{i}.png", f"opt_256_oc_0.2/{i}.png") for i in ids]
    return _build(root, entries, size, defects)


def make_sen12ms(root: Path, size: int = 32, defects: bool = False) -> Fake:
    """SEN12MS GeoTIFFs: ``<season>_s1/s1_<scene>/…_s1_<scene>_p<patch>.tif`` (2 float32 bands, dB) and
    ``_s2`` (13 uint16 bands), plus the split lists (S2 file names). One pair is in neither list."""
    import tifffile

    split_of = {("ROIs1158_spring", 1): "train", ("ROIs1868_summer", 7): "train", ("ROIs2017_winter", 3): "test"}
    patches = {("ROIs1158_spring", 1): (30, 31, 40), ("ROIs1868_summer", 7): (2,), ("ROIs2017_winter", 3): (5, 9),
               ("ROIs1970_fall", 8): (1,)}
    fake = Fake(root)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    rng = np.random.default_rng(0)
    for (season, scene), ps in patches.items():
        for p in ps:
            pid = f"{season}_{scene}_p{p}"
            s1 = root / f"{season}_s1/s1_{scene}/{season}_s1_{scene}_p{p}.tif"
            s2 = root / f"{season}_s2/s2_{scene}/{season}_s2_{scene}_p{p}.tif"
            s1.parent.mkdir(parents=True, exist_ok=True)
            s2.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(s1, rng.uniform(-30, 5, (2, size, size)).astype(np.float32), photometric="minisblack", planarconfig="separate")
            tifffile.imwrite(s2, rng.integers(0, 6000, (13, size, size)).astype(np.uint16), photometric="minisblack", planarconfig="separate")
            split = split_of.get((season, scene))
            if split:
                lists[split].append(s2.name)
                fake.ids.setdefault(split, []).append(pid)
    for split, names in lists.items():
        (root / f"{split}_list.txt").write_text("".join(f"{n}\n" for n in names))
    if defects:
        fake.corrupt = "ROIs2017_winter_s2/s2_3/ROIs2017_winter_s2_3_p9.tif"
        (root / fake.corrupt).write_bytes(b"II*\x00 not a tiff")
    fake.ids = {s: sorted(v) for s, v in fake.ids.items()}
    return fake


def make_spacenet6(root: Path, size: int = 32) -> Fake:
    """SpaceNet 6 train tiles: 4-band float32 SAR-Intensity (no-data border of zeros) and 3-band uint8 PS-RGB.
    Ids in ``Fake.ids["all"]``; strip ``20190822065725_20190822070012`` falls in test by the rule."""
    import tifffile

    tiles = {"20190804111224_20190804111453": (8679, 8680), "20190822065725_20190822070012": (3, 17)}
    fake = Fake(root)
    rng = np.random.default_rng(0)
    folder = root / "train" / "AOI_11_Rotterdam"
    for strip, ns in tiles.items():
        for n in ns:
            sar = rng.uniform(10, 90, (4, size, size)).astype(np.float32)
            sar[:, :, : size // 4] = 0  # outside the SAR strip
            for product, img in (("SAR-Intensity", sar), ("PS-RGB", texture(size, n, 3))):
                path = folder / product / f"SN6_Train_AOI_11_Rotterdam_{product}_{strip}_tile_{n}.tif"
                path.parent.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(path, img, photometric="minisblack" if product == "SAR-Intensity" else "rgb",
                                 planarconfig="separate" if product == "SAR-Intensity" else "contig")
            fake.ids.setdefault("all", []).append(f"{strip}_tile_{n}")
    fake.ids = {s: sorted(v) for s, v in fake.ids.items()}
    return fake


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="write a fake `folder` dataset (split test) for loading benchmarks")
    parser.add_argument("out", type=Path)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    make_folder(args.out, size=args.size, pairs=args.pairs)
    print(f"wrote {args.pairs} pairs of {args.size}×{args.size} under {args.out}/test/{{sar,opt}}/")
