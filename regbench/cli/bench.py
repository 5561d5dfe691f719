"""``regbench bench …``: benchmarks that print speed and memory figures (not tests)."""
from __future__ import annotations

from typing import Any, Callable

import click

from .common import (data_set_option, dataset_option, dataset_sets, device_option, emit_json, json_option,
                     limit_option, log, parse_sets, protocol_option, root_option, set_option, split_option)


@click.group()
def bench() -> None:
    """Benchmarks that print speed and memory figures (not tests)."""


def _run(as_json: bool, fn: Callable[..., Any], **kwargs: Any) -> None:
    """Run a benchmark printing its lines for people (on stderr with --json), then its figures as JSON."""
    figures = fn(**kwargs, echo=lambda m: log(m, as_json))
    if as_json:
        emit_json(figures)


@bench.command("harness")
@dataset_option(default="synthetic-512")
@limit_option(default=50, what="test pairs timed")
@json_option
def bench_harness(dataset: str, limit: int | None, as_json: bool) -> None:
    """The harness' own cost per pair (load, deform, cache, score, log), excluding the method."""
    from ..bench.harness import bench_harness as run_bench

    _run(as_json, run_bench, dataset=dataset, n_pairs=limit)


@bench.command("data")
@dataset_option(default=None, required=True)
@root_option
@split_option
@limit_option(default=200, what="pairs read")
@click.option("--workers", multiple=True, type=click.IntRange(min=0), default=(0, 2), show_default=True,
              help="DataLoader worker counts to time (repeatable)")
@protocol_option
@data_set_option
@json_option
def bench_data(dataset, root, split, limit, workers, protocol, data_sets, as_json) -> None:
    """Pairs per second of reading a dataset (OpenCV, DataLoader workers) + the protocol's SAR deformation."""
    from ..bench.data import bench_data as run_bench

    _run(as_json, run_bench, dataset=dataset, split=split, limit=limit, workers=workers, protocol=protocol,
         sets=dataset_sets(data_sets, root))


@bench.command("cfog")
@click.option("--size", default=512, show_default=True, type=click.IntRange(min=64), help="pair side (px)")
@click.option("--points", default=200, show_default=True, type=click.IntRange(min=1), help="control points")
@click.option("--repeats", default=7, show_default=True, type=click.IntRange(min=1), help="timed repeats")
@set_option
@json_option
def bench_cfog(size: int, points: int, repeats: int, sets: tuple[str, ...], as_json: bool) -> None:
    """CFOG stages on one pair, its FFT matching beside the per-channel cv2.matchTemplate reference."""
    from ..bench.cfog import bench_cfog as run_bench

    _run(as_json, run_bench, size=size, n_points=points, repeats=repeats, sets=parse_sets(sets))


@bench.command("soma")
@click.option("--size", default=512, show_default=True, type=click.IntRange(min=64), help="pair side (px)")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(min=1), help="timed repeats")
@device_option
@click.option("--no-released", is_flag=True, help="skip the released-code kernels comparison")
@click.option("--released-code", type=click.Path(exists=True, file_okay=False),
              help="local checkout of github.com/traslauc/SOMA to time side by side (512 only)")
@json_option
def bench_soma(size: int, repeats: int, device: str, no_released: bool, released_code: str | None,
               as_json: bool) -> None:
    """SOMA and soma-small inference time and peak memory per pair (random weights: timing only)."""
    from ..bench.soma import bench_soma as run_bench

    _run(as_json, run_bench, size=size, repeats=repeats, device=device, compare_released=not no_released,
         released_code=released_code)


@bench.command("startup")
@click.option("--repeats", default=7, show_default=True, type=click.IntRange(min=1), help="timed runs per command")
@json_option
def bench_startup(repeats: int, as_json: bool) -> None:
    """How long `regbench --help`, `regbench list` and `regbench data info` take (whole processes)."""
    from ..bench.startup import bench_startup as run_bench

    _run(as_json, run_bench, repeats=repeats)
