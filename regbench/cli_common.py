"""Option parsing shared by the CLI modules (``cli``, ``data_cli``, ``cli_grid``)."""
from __future__ import annotations

from typing import Any

import click

from . import config as cfg


def parse_cli_sets(items: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` options as a dict; a malformed one is a usage error naming it."""
    try:
        return cfg.parse_sets(items)
    except cfg.ConfigError as e:
        raise click.BadParameter(str(e)) from e
