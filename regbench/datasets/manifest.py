"""Split manifests: the committed list of pair ids of one split of one dataset, with a checksum.

A manifest is a text file ``datasets/<dataset>/<split>.txt`` (under the cards root) so that two labs
evaluate the identical pairs::

    # regbench split manifest
    # dataset: osdataset
    # split: test
    # rule: official split of Xiang et al. 2020 ...
    # count: 424
    # sha256: <sha256 of the id lines, each followed by a newline>
    1
    10
    ...

Ids are relative (never absolute paths) and sorted with Python's string order, so the file and
its checksum are identical on every machine.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..store import atomic_write_text
from ..registry import cards_root
from ..errors import DatasetError

HEADER = "# regbench split manifest"


def ids_checksum(ids: list[str] | tuple[str, ...]) -> str:
    """sha256 of the ids, one per line, each followed by a newline."""
    return hashlib.sha256("".join(f"{i}\n" for i in ids).encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """The sorted pair ids of one split, and the rule that chose them."""

    dataset: str
    split: str
    ids: tuple[str, ...]
    rule: str

    def __post_init__(self) -> None:
        if list(self.ids) != sorted(set(self.ids)):
            raise ValueError(f"manifest {self.dataset}/{self.split}: ids must be unique and sorted")
        bad = [i for i in self.ids if not i or i.startswith("/") or "\n" in i or i.startswith("#")]
        if bad:
            raise ValueError(f"manifest {self.dataset}/{self.split}: ids must be relative one-line names, got {bad[:3]}")

    @property
    def checksum(self) -> str:
        return ids_checksum(self.ids)

    def to_text(self) -> str:
        head = [HEADER, f"dataset: {self.dataset}", f"split: {self.split}", f"rule: {' '.join(self.rule.split())}",
                f"count: {len(self.ids)}", f"sha256: {self.checksum}"]
        return "\n".join(head[:1] + [f"# {h}" for h in head[1:]]) + "\n" + "".join(f"{i}\n" for i in self.ids)

    @classmethod
    def from_text(cls, text: str, source: str) -> "Manifest":
        """Parse a manifest; a wrong count or checksum (a hand edit, a truncated copy) is refused."""
        lines = text.splitlines()
        if not lines or lines[0] != HEADER:
            raise DatasetError(f"{source} is not a regbench split manifest (first line must be {HEADER!r})")
        head = dict(line[2:].split(": ", 1) for line in lines[1:] if line.startswith("# ") and ": " in line)
        ids = tuple(line for line in lines if line and not line.startswith("#"))
        missing = {"dataset", "split", "rule", "count", "sha256"} - set(head)
        if missing:
            raise DatasetError(f"split manifest {source} lacks header fields {sorted(missing)}")
        if int(head["count"]) != len(ids) or ids_checksum(ids) != head["sha256"]:
            raise DatasetError(
                f"split manifest {source} fails its count/checksum (header: {head['count']} ids, "
                f"file: {len(ids)} ids); it was edited or truncated — restore it from the repository"
            )
        return cls(head["dataset"], head["split"], ids, head["rule"])


def hashed_split(key: str, salt: str, fractions: Sequence[tuple[str, float]]) -> str:
    """Deterministic split of ``key``: u = first 8 bytes of sha256(``salt/key``) as a fraction of 2⁶⁴,
    then the first split whose cumulative fraction exceeds u (e.g. train 0.8, val 0.1, test 0.1)."""
    u = int.from_bytes(hashlib.sha256(f"{salt}/{key}".encode()).digest()[:8], "little") / 2.0**64
    total = 0.0
    for split, fraction in fractions:
        total += fraction
        if u < total:
            return split
    return fractions[-1][0]


def manifest_dir(dataset: str) -> Path:
    """Folder of a dataset's committed manifests: ``<cards root>/datasets/<dataset>/``."""
    return cards_root() / "datasets" / dataset


def manifest_path(dataset: str, split: str) -> Path:
    return manifest_dir(dataset) / f"{split}.txt"


def load_manifest(dataset: str, split: str) -> Manifest | None:
    """The committed manifest of ``dataset``/``split``, or None when there is none."""
    path = manifest_path(dataset, split)
    if not path.is_file():
        return None
    manifest = Manifest.from_text(path.read_text(), str(path))
    if (manifest.dataset, manifest.split) != (dataset, split):
        raise DatasetError(f"split manifest {path} is for {manifest.dataset}/{manifest.split}, not {dataset}/{split}")
    return manifest


def write_manifest(manifest: Manifest, folder: Path | None = None) -> Path:
    """Write ``manifest`` to ``folder`` (default: the dataset's committed-manifest folder)."""
    path = (folder if folder is not None else manifest_dir(manifest.dataset)) / f"{manifest.split}.txt"
    atomic_write_text(path, manifest.to_text())
    return path
