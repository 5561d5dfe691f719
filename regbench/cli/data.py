"""``regbench data verify | info | manifest``: check, describe and split the real datasets."""
from __future__ import annotations

import sys

import click

from .common import (data_set_option, dataset_option, emit_json, json_option, limit_option, log, parse_sets, progress,
                     root_option)


@click.group("data")
def data() -> None:
    """Check, describe and split the real datasets."""


@data.command("verify")
@dataset_option(default=None, required=True)
@root_option
@limit_option(default=32, what="pairs decoded per split, spread evenly")
@data_set_option
@json_option
def verify_cmd(dataset: str, root: str | None, limit: int | None, data_sets: tuple[str, ...], as_json: bool) -> None:
    """Check a dataset folder: layout, pair counts against the manifests, partners, decodable images, sizes."""
    from ..datasets.verify import verify

    with progress(f"verify {dataset}") as update:
        report = verify(dataset, root, limit, parse_sets(data_sets), progress=update)
    if as_json:
        emit_json(report.to_dict())
    else:
        log(str(report))
    sys.exit(0 if report.ok else 1)


@data.command("info")
@dataset_option(default=None, required=True)
def info_cmd(dataset: str) -> None:
    """What a dataset is, its licence, download page, expected layout and split."""
    from ..datasets.verify import info

    log(info(dataset))


@data.command("manifest")
@dataset_option(default=None, required=True)
@root_option
@click.option("--split", "splits", multiple=True, help="split(s) to write (repeatable; default: all)")
@click.option("--out", default=None, help="folder to write to (default: the committed datasets/<dataset>/)")
@click.option("--force", is_flag=True, help="replace a committed manifest that differs")
@data_set_option
def manifest_cmd(dataset: str, root: str | None, splits: tuple[str, ...], out: str | None, force: bool,
                 data_sets: tuple[str, ...]) -> None:
    """Write split manifests from a complete copy of a dataset (its split rule applied to the files)."""
    from ..datasets.verify import write_manifests

    for path in write_manifests(dataset, root, list(splits) or None, out, force, parse_sets(data_sets)):
        log(f"wrote {path}")
