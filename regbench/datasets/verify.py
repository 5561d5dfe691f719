"""Checking and describing dataset folders: :func:`verify`, :func:`info`, :func:`write_manifests`
(the library behind ``regbench data verify | info | manifest``)."""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import config as cfg
from .. import registry
from ..errors import DatasetError
from .base import resolve_root, user_config_path
from .folder import FilePairDataset, first
from .manifest import Manifest, manifest_path, write_manifest


@dataclass
class SplitReport:
    """What ``verify`` found for one split; ``problems`` lists everything that needs fixing."""

    split: str
    found: int = 0  # complete pairs on disk
    expected: int | None = None  # pairs in the committed manifest, if any
    manifest: str | None = None
    missing: list[str] = field(default_factory=list)  # files of manifest pairs that are absent
    extra: list[str] = field(default_factory=list)  # complete pairs on disk that the manifest lacks
    orphans: list[str] = field(default_factory=list)  # "<file> has no partner <file>"
    unrecognised: list[str] = field(default_factory=list)  # files in the scanned folders that fit no template
    read: int = 0  # images decoded
    formats: Counter = field(default_factory=Counter)  # "sar 512×512 uint8 1ch" → count
    bad: list[str] = field(default_factory=list)  # corrupt files and wrong sizes
    error: str | None = None  # nothing usable found for this split

    @property
    def problems(self) -> list[str]:
        out = [self.error] if self.error else []
        if self.missing:
            out.append(f"{len(self.missing)} pair(s) of the manifest missing on disk: {first(self.missing)}")
        if self.orphans:
            out.append(f"{len(self.orphans)} image(s) without partner: {first(self.orphans, 3)}")
        out += self.bad
        return out

    def __str__(self) -> str:
        if self.error and not self.found:
            return f"[{self.split}] ERROR {self.error}"
        count = f"{self.found} pairs" + (f" (manifest: {self.expected}, {self.manifest})" if self.expected is not None else " (no manifest: pairs found on disk)")
        lines = [f"[{self.split}] {'OK' if not self.problems else 'PROBLEMS'} — {count}"]
        lines += [f"  read {self.read} images: " + ", ".join(f"{k} ×{v}" for k, v in sorted(self.formats.items()))] if self.read else []
        lines += [f"  - {p}" for p in self.problems]
        if self.extra:
            lines.append(f"  note: {len(self.extra)} pair(s) on disk are not in the manifest (ignored): {first(self.extra)}")
        if self.unrecognised:
            lines.append(f"  note: {len(self.unrecognised)} file(s) fit no name pattern (ignored): {first(self.unrecognised)}")
        return "\n".join(lines)


@dataclass
class Report:
    dataset: str
    root: str
    layout: str
    splits: list[SplitReport] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not any(s.problems for s in self.splits)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (``regbench data verify --json``)."""
        return {"dataset": self.dataset, "root": self.root, "ok": self.ok, "error": self.error,
                "splits": [{**dataclasses.asdict(s), "formats": dict(s.formats), "problems": s.problems}
                           for s in self.splits]}

    def __str__(self) -> str:
        head = f"dataset {self.dataset} at {self.root}: {'OK' if self.ok else 'PROBLEMS FOUND'}\nexpected layout:\n{self.layout}"
        body = [f"ERROR {self.error}"] if self.error else [str(s) for s in self.splits]
        return "\n".join([head, *body])


def _build(dataset: str, root: str | Path | None, sets: dict[str, Any] | None) -> FilePairDataset:
    ds = registry.build_dataset(dataset, (sets or {}) | ({"root": str(root)} if root else {}))
    if not isinstance(ds, FilePairDataset):
        raise DatasetError(f"dataset {dataset!r} is not stored as files; `regbench data` does not apply to it")
    return ds


def _image_format(raw: np.ndarray) -> str:
    channels = 1 if raw.ndim == 2 else raw.shape[2]
    return f"{raw.shape[0]}×{raw.shape[1]} {raw.dtype} {channels}ch"


def _check_pair(ds: FilePairDataset, sar_rel: str, opt_rel: str, report: SplitReport) -> None:
    """Decode a pair's (SAR, optical) files; record formats, corrupt files and wrong sizes."""
    shapes: list[tuple[int, ...]] = []
    for kind, rel in (("sar", sar_rel), ("opt", opt_rel)):
        raw = ds.read_raw(ds.root / rel)
        report.read += 1
        if raw is None:
            report.bad.append(f"{rel}: cannot be decoded (corrupt or not an image)")
            continue
        report.formats[f"{kind} {_image_format(raw)}"] += 1
        shapes.append(raw.shape[:2])
    if len(shapes) == 2:
        try:
            ds.check_shapes(Path(sar_rel), shapes[0], Path(opt_rel), shapes[1])
        except DatasetError as e:
            report.bad.append(str(e))


def verify(dataset: str, root: str | Path | None = None, limit: int | None = 32,
           sets: dict[str, Any] | None = None, progress: Callable[[int, int], Any] | None = None) -> Report:
    """Check a dataset folder against its layout and manifests.

    Per split: pairs found vs the manifest (missing files, extra pairs), images without partner,
    files fitting no name pattern, and ``limit`` pairs decoded (evenly spread; None = all) for size,
    dtype, channels and corruption; ``progress(decoded, planned)`` after each decoded pair.
    """
    ds = _build(dataset, root, sets)
    try:
        ds_root = str(ds.root)
    except DatasetError as e:
        return Report(dataset, "(none)", ds.layout().describe("<split>"), error=str(e))
    decoded = planned = 0
    report = Report(dataset, ds_root, ds.layout().describe("<split>"))
    if not Path(ds_root).is_dir():
        report.error = f"{ds_root} does not exist or is not a folder\n{ds.about}".rstrip()
        return report
    for split in ds.splits:
        sr = SplitReport(split)
        report.splits.append(sr)
        try:
            scan = ds.scan(split)
            manifest = ds.manifest(split)
        except DatasetError as e:
            sr.error = str(e)
            continue
        sr.found = len(scan.pairs)
        sr.orphans = [f"{a} has no partner {b}" for a, b in scan.orphans.values()]
        sr.unrecognised = scan.unrecognised
        wanted = list(scan.pairs)
        if manifest is not None:
            sr.expected, sr.manifest = len(manifest.ids), str(manifest_path(ds.manifest_name, split))
            listed = set(manifest.ids)
            sr.missing = [ds.missing_files(split, i, scan) for i in manifest.ids if i not in scan.pairs]
            sr.extra = [i for i in scan.pairs if i not in listed]
            wanted = [i for i in scan.pairs if i in listed]
        if not scan.pairs and not scan.orphans:
            sr.error = ds.not_found_message(split).splitlines()[0] + " " + ds.found_description(split)
            continue
        pick = wanted if limit is None or len(wanted) <= limit else [wanted[int(k)] for k in np.linspace(0, len(wanted) - 1, limit)]
        planned += len(pick)
        for pair_id in pick:
            _check_pair(ds, *scan.pairs[pair_id], sr)
            decoded += 1
            if progress:
                progress(decoded, planned)
    return report


def info(dataset: str) -> str:
    """What a dataset is, its licence, where to get it, its expected layout, split rule and manifests."""
    spec = registry.dataset(dataset)
    card = registry.cards("dataset").get(dataset, spec.card)
    ds = spec.load_class()(spec.resolve_config())
    ds.name = dataset
    lines = [f"{dataset}: {' '.join(str(card.get('description', '')).split())}"]
    for key in ("paper", "source", "download", "licence"):
        if card.get(key):
            lines.append(f"{key}: {' '.join(str(card[key]).split())}")
    if isinstance(ds, FilePairDataset):
        layout = str(card.get("layout") or ds.layout().describe("<split>")).rstrip().splitlines()
        lines.append("layout:\n" + "\n".join(f"  {line.strip()}" for line in layout))
        lines.append(f"split: {' '.join(str(card.get('split') or ds.split_rule).split())}")
        for split in ds.splits:
            m = ds.manifest(split)
            lines.append(f"manifest {split}: " + (f"{len(m.ids)} pairs, sha256 {m.checksum[:16]}…" if m else "none (pairs found on disk / split rule)"))
        try:
            root = resolve_root(ds.config.root, (dataset, *ds.root_aliases))
            lines.append(f"data root: {root} ({'exists' if root.is_dir() else 'does not exist'})")
        except DatasetError:
            lines.append(f"data root: not set (--root PATH, REGBENCH_DATA, or data: {{{dataset}: PATH}} in {user_config_path()})")
    lines.append(f"config: {cfg.to_dict(ds.config)}")
    return "\n".join(lines)


def write_manifests(dataset: str, root: str | Path | None = None, splits: list[str] | None = None,
                    out: str | Path | None = None, force: bool = False, sets: dict[str, Any] | None = None) -> list[Path]:
    """Write the manifest of each split as the dataset's rule derives it from a complete copy at ``root``.

    Refuses (unless ``force``) to replace a committed manifest by a different one.
    """
    ds = _build(dataset, root, sets)
    written = []
    for split in splits or list(ds.splits):
        new: Manifest = ds.rule_manifest(split)
        old = ds.manifest(split)
        if old is not None and old.ids != new.ids and not force and out is None:
            gone, added = set(old.ids) - set(new.ids), set(new.ids) - set(old.ids)
            raise DatasetError(
                f"{dataset}/{split}: the committed manifest differs from {ds.root} ({len(gone)} pairs absent: "
                f"{first(sorted(gone))}; {len(added)} new: {first(sorted(added))}); pass --force to replace it"
            )
        written.append(write_manifest(new, Path(out) if out else None))
    return written
