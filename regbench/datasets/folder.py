"""Datasets stored as image files: a layout template finds each pair's SAR and optical file.

:class:`FilePairDataset` is the common base of every on-disk dataset (``folder`` and the real
benchmarks). A :class:`Layout` names the two files of a pair with templates such as
``{split}/sar/{name}.png``; pairs are found by globbing (never by counting: real datasets have gaps
in their numbering). The pair list of a split is the committed split manifest when there is one
(``regbench.datasets.manifest``), else every complete pair found on disk (folder splits) or the
dataset's deterministic split rule (datasets without split folders).

Every problem is a :class:`~regbench.datasets.base.DatasetError` that names the files concerned,
the expected layout and what was found instead.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from .base import DatasetConfig, PairDataset, read_image, resolve_root, user_config_path
from ..config import setting
from ..errors import DatasetError
from .manifest import Manifest, load_manifest, manifest_path

_FIELD = re.compile(r"\{(\w+)\}")
SHOW = 5  # how many names an error message lists


def first(names: Sequence[str], n: int = SHOW) -> str:
    """``a, b, c (+12 more)``: the first ``n`` names and how many were left out."""
    shown = ", ".join(names[:n])
    return shown + (f" (+{len(names) - n} more)" if len(names) > n else "")


def read_tiff(path: Path) -> np.ndarray:
    """(H, W, bands) pixels of a (Geo)TIFF; DatasetError naming the file if absent or unreadable."""
    import tifffile

    if not path.is_file():
        raise DatasetError(f"image file missing: {path}")
    try:
        arr = tifffile.imread(path)
    except Exception as e:  # tifffile raises many types for broken files and missing codecs
        raise DatasetError(f"cannot decode {path} ({e}); re-download it (LZW files need `pip install imagecodecs`)") from None
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise DatasetError(f"cannot decode {path} (no raster of 2 or 3 dimensions in it; corrupt?); re-download it")
    if arr.ndim == 2:
        return arr[..., None]
    return np.moveaxis(arr, 0, -1) if arr.shape[0] < arr.shape[-1] else arr


# -------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """Where the SAR and optical file of a pair live, relative to the dataset root.

    ``sar`` / ``opt`` are templates over ``{split}`` and the pair's fields (``{name}``, ``{n}``…);
    ``pair_id`` builds the id from the same fields; ``fields`` gives a field's regex (default
    ``[^/]+``). A field may repeat within a template (it must then take the same value).
    """

    sar: str
    opt: str
    pair_id: str = "{name}"
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def has_split(self) -> bool:
        return "{split}" in self.sar

    def regex(self, template: str, split: str) -> re.Pattern[str]:
        patterns = dict(self.fields)
        out, seen, pos = [], set(), 0
        for m in _FIELD.finditer(template):
            out.append(re.escape(template[pos : m.start()]))
            name = m.group(1)
            if name == "split":
                out.append(re.escape(split))
            elif name in seen:
                out.append(f"(?P={name})")
            else:
                out.append(f"(?P<{name}>{patterns.get(name, '[^/]+')})")
                seen.add(name)
            pos = m.end()
        out.append(re.escape(template[pos:]))
        return re.compile("".join(out) + r"\Z")

    @staticmethod
    def glob(template: str, split: str) -> str:
        parts = _FIELD.split(template)  # literal, field, literal, field, …
        return "".join(glob.escape(p) if i % 2 == 0 else glob.escape(split) if p == "split" else "*" for i, p in enumerate(parts))

    def paths(self, split: str, pair_id: str) -> tuple[str, str]:
        """(SAR, optical) paths of a pair, relative to the root."""
        m = self.regex(self.pair_id, split).match(pair_id)
        if m is None:
            raise DatasetError(f"pair id {pair_id!r} does not have the form {self.pair_id!r} of this dataset")
        values = m.groupdict() | {"split": split}
        return self.sar.format(**values), self.opt.format(**values)

    def describe(self, split: str) -> str:
        """The two templates as a human reads them: ``<root>/test/sar/<name>.png``."""
        show = lambda t: "<root>/" + _FIELD.sub(lambda m: split if m.group(1) == "split" else f"<{m.group(1)}>", t)  # noqa: E731
        return f"  {show(self.sar)}\n  {show(self.opt)}"


@dataclass
class Scan:
    """What a glob of one split found: complete pairs, orphans and files that fit no template.

    ``pairs``: id → (SAR, optical) relative paths; ``orphans``: id → (present file, missing partner).
    """

    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    orphans: dict[str, tuple[str, str]] = field(default_factory=dict)
    unrecognised: list[str] = field(default_factory=list)

    def only(self, keep: set[str]) -> "Scan":
        return Scan({i: p for i, p in self.pairs.items() if i in keep},
                    {i: p for i, p in self.orphans.items() if i in keep}, self.unrecognised)


def scan_layout(root: Path, layout: Layout, split: str) -> Scan:
    """Glob both templates of ``layout`` under ``root`` and pair the files by id."""
    found: list[dict[str, str]] = []
    unrecognised: list[str] = []
    for template in (layout.sar, layout.opt):
        regex = layout.regex(template, split)
        by_id: dict[str, str] = {}
        for rel in glob.glob(Layout.glob(template, split), root_dir=root):
            rel = rel.replace(os.sep, "/")
            m = regex.match(rel)
            if m is None:
                unrecognised.append(rel)
            else:
                by_id[layout.pair_id.format(**m.groupdict(), split=split)] = rel
        found.append(by_id)
    sar, opt = found
    pairs = {i: (sar[i], opt[i]) for i in sorted(sar.keys() & opt.keys())}
    orphans = {i: (sar[i], layout.paths(split, i)[1]) for i in sar.keys() - opt.keys()}
    orphans |= {i: (opt[i], layout.paths(split, i)[0]) for i in opt.keys() - sar.keys()}
    return Scan(pairs, dict(sorted(orphans.items())), sorted(unrecognised))


# ------------------------------------------------------------------------------------- dataset
@dataclass
class FileConfig(DatasetConfig):
    #: expected height = width of every image; None: any size (SAR and optical must still agree)
    size: int | None = setting(None, ge=1)


class FilePairDataset(PairDataset):
    """Base of the datasets stored as SAR/optical image files; subclasses define :meth:`layout`.

    Datasets whose layout has no ``{split}`` folder implement :meth:`assign_split` (their split
    rule); ``split_rule`` describes where a split comes from (written into manifests).
    """

    Config: ClassVar[type[DatasetConfig]] = FileConfig
    #: other folder names that hold this dataset under ``$REGBENCH_DATA`` or in the user config
    root_aliases: ClassVar[tuple[str, ...]] = ()
    split_rule: ClassVar[str] = "the dataset's own split folders"
    #: what a user needs to know to get the data (appended to "not found" errors)
    about: ClassVar[str] = ""

    def __init__(self, config: DatasetConfig | None = None) -> None:
        super().__init__(config)
        self._root: Path | None = None
        self._scans: dict[str, Scan] = {}

    def layout(self) -> Layout:
        raise NotImplementedError

    def assign_split(self, pair_id: str) -> str:
        """The split of a pair, for layouts without split folders."""
        raise NotImplementedError

    # ---------------------------------------------------------------- discovery
    @property
    def root(self) -> Path:
        if self._root is None:
            try:
                self._root = resolve_root(self.config.root, (self.name, *self.root_aliases))
            except DatasetError as e:
                raise DatasetError(f"{e}\n{self.about}".rstrip()) from None
        return self._root

    def scan(self, split: str) -> Scan:
        """The files of ``split`` on disk (globbed once, then cached)."""
        self.check_split(split)
        if split not in self._scans:
            layout = self.layout()
            if layout.has_split:
                self._scans[split] = scan_layout(self.root, layout, split)
            else:  # one glob of the whole dataset (key ""), then the split rule, for every split at once
                full = self._scans[""] = scan_layout(self.root, layout, split)
                rule = {i: self.assign_split(i) for i in full.pairs.keys() | full.orphans.keys()}
                for s in self.splits:
                    self._scans[s] = full.only({i for i, assigned in rule.items() if assigned == s})
        return self._scans[split]

    @property
    def manifest_name(self) -> str:
        """Folder of this dataset's committed manifests: ``datasets/<manifest_name>/<split>.txt``."""
        return self.name

    def manifest(self, split: str) -> Manifest | None:
        return load_manifest(self.manifest_name, split)

    def rule_manifest(self, split: str) -> Manifest:
        """The manifest of ``split`` as this dataset's rule derives it from the files on disk."""
        scan = self.scan(split)
        if scan.orphans:
            raise DatasetError(self.orphan_message(split, scan))
        if not scan.pairs:
            raise DatasetError(self.not_found_message(split))
        return Manifest(self.manifest_name, split, tuple(sorted(scan.pairs)), self.split_rule)

    def ids(self, split: str) -> list[str]:
        """The manifest's ids when one is committed (all must be on disk), else the complete pairs found."""
        scan = self.scan(split)
        if not scan.pairs and not scan.orphans:
            raise DatasetError(self.not_found_message(split))
        manifest = self.manifest(split)
        if manifest is None:
            return list(self.rule_manifest(split).ids)
        absent = [i for i in manifest.ids if i not in scan.pairs]
        if absent:
            raise DatasetError(
                f"dataset {self.name!r}, split {split!r}: {len(absent)} of the {len(manifest.ids)} pairs listed in "
                f"{manifest_path(self.manifest_name, split)} are incomplete under {self.root}; missing files: "
                f"{first([self.missing_files(split, i, scan) for i in absent])}.\n"
                f"Expected layout:\n{self.layout().describe(split)}\n"
                f"Run `regbench data verify --dataset {self.name} --root {self.root}` for a full report."
            )
        return list(manifest.ids)

    def missing_files(self, split: str, pair_id: str, scan: Scan) -> str:
        """The relative path(s) a pair of ``split`` lacks on disk."""
        if pair_id in scan.orphans:
            return scan.orphans[pair_id][1]
        return " + ".join(self.layout().paths(split, pair_id))

    # ---------------------------------------------------------------- loading
    def paths(self, split: str, pair_id: str) -> tuple[Path, Path]:
        """Absolute (SAR, optical) paths of a pair."""
        sar, opt = self.layout().paths(split, pair_id)
        return self.root / sar, self.root / opt

    def load(self, split: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(SAR (H, W), optical (H, W, 3)) float32 in [0, 1]; a bad file raises DatasetError naming it."""
        sar_path, opt_path = self.paths(split, pair_id)
        sar = read_image(sar_path, gray=True)
        opt = read_image(opt_path, gray=False)
        self.check_shapes(sar_path, sar.shape[:2], opt_path, opt.shape[:2])
        return sar, opt

    def read_raw(self, path: Path) -> np.ndarray | None:
        """The file's pixels as stored (``regbench data verify`` reports their size, dtype and bands); None if undecodable.

        (Geo)TIFFs go through tifffile (OpenCV refuses multi-band float and 13-band uint16 TIFFs).
        """
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                return read_tiff(path)
            except DatasetError:
                return None
        import cv2

        return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)

    def check_shapes(self, sar_path: Path, sar_hw: tuple[int, ...], opt_path: Path, opt_hw: tuple[int, ...]) -> None:
        size = getattr(self.config, "size", None)
        for path, hw in ((sar_path, sar_hw), (opt_path, opt_hw)):
            if size and tuple(hw) != (size, size):
                raise DatasetError(f"{path}: image is {hw[0]}×{hw[1]}, dataset {self.name!r} expects {size}×{size}")
        if tuple(sar_hw) != tuple(opt_hw):
            raise DatasetError(f"{sar_path} is {sar_hw[0]}×{sar_hw[1]} but its partner {opt_path} is {opt_hw[0]}×{opt_hw[1]}")

    @property
    def fingerprint(self) -> str:
        """Name, resolved root and committed manifests: another copy of the data is another cache."""
        sums = [f"{s}:{m.checksum[:16]}" for s in self.splits if (m := self.manifest(s)) is not None]
        return f"{self.name}|root={self.root.resolve()}|{','.join(sums) or 'files-on-disk'}"

    def source(self, split: str, pair_id: str) -> str:
        """Size and modification time (ns) of the pair's two files."""
        parts = []
        for path in self.paths(split, pair_id):
            try:
                st = path.stat()
            except OSError:
                return "missing"
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        return "|".join(parts)

    # ---------------------------------------------------------------- messages
    def orphan_message(self, split: str, scan: Scan) -> str:
        lines = [f"{present} has no partner {missing}" for present, missing in scan.orphans.values()]
        return (
            f"dataset {self.name!r}, split {split!r} under {self.root}: {len(lines)} image(s) lack their partner: "
            f"{first(lines, 3)}. Restore or remove them (every pair needs both files).\n"
            f"Expected layout:\n{self.layout().describe(split)}"
        )

    def not_found_message(self, split: str) -> str:
        if not self.layout().has_split and self._scans.get("") and self._scans[""].pairs:
            return (f"dataset {self.name!r}: none of the {len(self._scans[''].pairs)} pairs under {self.root} falls in "
                    f"split {split!r} by the split rule ({self.split_rule}); the copy is partial or too small")
        return (
            f"dataset {self.name!r}, split {split!r}: no image pairs under {self.root}.\n"
            f"Expected layout:\n{self.layout().describe(split)}\n"
            f"Found: {self.found_description(split)}\n"
            f"Point the dataset at the folder holding this layout: --root PATH (or --data-set root=PATH), "
            f"REGBENCH_DATA=<folder holding {self.name}/>, or `data: {{{self.name}: PATH}}` in {user_config_path()}. "
            f"Download and licence: `regbench data info --dataset {self.name}`.\n{self.about}"
        ).rstrip()

    def found_description(self, split: str) -> str:
        """What exists along the path the SAR template expects: the deepest folder and its content."""
        literal = self.layout().sar.replace("{split}", split)
        parts = Path(literal).parts[:-1]
        folder = self.root
        if not folder.is_dir():
            return f"{folder} does not exist"
        for part in parts:
            if "{" in part or not (folder / part).is_dir():
                break
            folder = folder / part
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
        nxt = next((p for p in parts[len(folder.relative_to(self.root).parts):]), None)
        lacks = f"; it has no {nxt}/" if nxt and "{" not in nxt else ""
        return f"{folder} holds {len(entries)} entries: {first(entries, 8) or '(empty)'}{lacks}"


@dataclass
class FolderConfig(FileConfig):
    sar_dir: str = "sar"
    opt_dir: str = "opt"
    ext: str = "png"


class Folder(FilePairDataset):
    """User pairs: ``<root>/<split>/sar/<name>.png`` with the same file name in ``<split>/opt/``.

    The layout of SOMA's SOPatch folders. The id of a pair is the file name without extension.
    """

    name = "folder"
    Config = FolderConfig

    def layout(self) -> Layout:
        c = self.config
        return Layout(f"{{split}}/{c.sar_dir}/{{name}}.{c.ext}", f"{{split}}/{c.opt_dir}/{{name}}.{c.ext}")
