"""The ``regbench`` command: the click group; each verb lives in its own module and is a thin layer
over one library call (parse options, call, print).

``run`` (run, demo, log) · ``train`` · ``grid`` (grid, leaderboard) · ``data`` (data verify | info |
manifest) · ``bench`` (bench harness | data | cfog | soma | startup) · ``catalog`` (list, config).
A :class:`~regbench.errors.RegbenchError` is shown as ``Error: <message>`` with exit status 1.
"""
from __future__ import annotations

import os

import click

from .. import __version__
from ..errors import RegbenchError
from .bench import bench
from .catalog import config_cmd, list_cmd
from .data import data
from .grid import grid_cmd, leaderboard_cmd
from .run import demo, log_cmd, run
from .train import train


class Group(click.Group):
    """A click group that turns user errors into one line and exit status 1."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except RegbenchError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=Group)
@click.version_option(__version__, "--version", prog_name="regbench")
@click.option("--verbose", "-v", is_flag=True, help="show the INFO logs of MLflow and other libraries")
def main(verbose: bool) -> None:
    """regbench: benchmark SAR–optical registration methods on fixed, shared test deformations."""
    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


for command in (run, demo, log_cmd, train, grid_cmd, leaderboard_cmd, data, bench, list_cmd, config_cmd):
    main.add_command(command)
